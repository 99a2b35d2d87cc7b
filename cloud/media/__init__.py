"""Media for remote video teller sessions: the Janus client, node placement, TURN
credentials and the post-call recording pipeline. Independent of MQTT and of the web app."""
