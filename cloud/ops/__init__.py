"""Operations: teller KPIs, Erlang C staffing, the monitoring big screen."""
