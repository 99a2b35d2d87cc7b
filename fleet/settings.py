"""Fleet settings (``CUNTONG_FLEET_*``, or ``[fleet]`` in the ``CUNTONG_CONFIG`` TOML file),
built once when the cloud app starts."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import SettingsBase


class FleetSettings(SettingsBase):
    model_config = SettingsConfigDict(env_prefix="CUNTONG_FLEET_", extra="forbid")
    toml_section: ClassVar[str] = "fleet"

    #: A terminal offline longer than this raises an alert (a village power cut is normal
    #: for minutes; a day is not).
    offline_alert_after_s: float = Field(default=1800.0, gt=0)
    disk_alert_pct: float = Field(default=90.0, gt=0, le=100)
    temp_alert_c: float = Field(default=70.0)
    #: A terminal whose link dropped this often in 10 minutes raises a flapping alert.
    flap_alert_count: int = Field(default=5, ge=2)
    alert_interval_s: float = Field(default=10.0, gt=0)
    #: Where new and cleared alerts are POSTed as JSON; empty: no webhook.
    alert_webhook_url: str = ""
    #: Misbehaviour (``fleet.misbehaviour``): within this window, this many rejected
    #: messages (malformed, oversized, bad MAC) or online/offline changes from one terminal
    #: raise a ``misbehaving`` alert; 0 switches a count off.
    misbehaviour_window_s: float = Field(default=600.0, gt=0)
    misbehaviour_rejects: int = Field(default=20, ge=0)
    misbehaviour_flaps: int = Field(default=10, ge=0)
    #: Broker logs to follow for refused SUBSCRIBEs and PUBLISHes (``fleet.brokerwatch``);
    #: each broker must log with ``refusal_log`` (debug level: see docs/provisioning.md
    #: for the cost). Empty: refusals are not counted.
    broker_log_files: list[Path] = Field(default_factory=list)
    #: Disable a terminal at the broker as soon as its ``misbehaving`` alert opens (the
    #: operator's one-click disable, done by the system and audited as such). Off: the
    #: alert only tells.
    misbehaviour_auto_disable: bool = False
    #: PIN key rotation (``fleet.pinkeys``): how often every keyed PIN pad gets a new working
    #: key, through the HSM service at ``hsm_url`` (bearer secret in ``hsm_secret_file``, the
    #: service's ``STATE/hsm.secret``). An empty ``hsm_url`` switches rotation off.
    pin_key_rotation_s: float = Field(default=86400.0, gt=0)
    hsm_url: str = ""
    hsm_secret_file: Path | None = None
    #: Log bundles uploaded by terminals (``fleet.logstore``) are deleted this long after
    #: they were stored; an upload never completed, this long after it was announced. The
    #: leader sweeps every ``log_sweep_interval_s``.
    log_retention_days: float = Field(default=30.0, gt=0)
    log_sweep_interval_s: float = Field(default=3600.0, gt=0)

    @model_validator(mode="after")
    def _hsm_secret_named(self) -> FleetSettings:
        if self.hsm_url and self.hsm_secret_file is None:
            raise ValueError("hsm_url is set but hsm_secret_file is not (the HSM's hsm.secret)")
        return self
