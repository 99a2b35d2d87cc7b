"""Typed settings, one class per process, read once in ``main()`` and passed down.

Values come from (highest first) keyword arguments, ``CUNTONG_*`` environment variables, then
an optional TOML file named by ``CUNTONG_CONFIG``. A bad value stops the process with a
message naming the setting; nothing is built at import time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from common.errors import ConfigError
from common.topics import valid_terminal_id


class BrokerEndpoint(BaseModel):
    """One MQTT broker of a failover list (a ``brokers`` entry): ``"host:port"`` or a table.

    Mosquitto has no clustering: every broker is a separate server with the same CA, server
    certificate names and dynamic-security roles; terminals use one at a time, in list order,
    and cloud services subscribe on all of them (docs/operations.md, "Broker failover")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    #: Where terminals reach this broker, if not at ``host`` (NAT, a public name).
    public_host: str = ""

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"


def parse_endpoints(raw: object) -> list[BrokerEndpoint]:
    """``brokers`` entries ("host:port" strings, or tables with host, port, public_host) as
    endpoints; one ValueError naming every bad entry, and any endpoint listed twice."""
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"not a JSON list: {err}") from err
        else:
            raw = [part for part in text.split(",") if part.strip()]
    if not isinstance(raw, list | tuple):
        raise ValueError('must be a list of "host:port" strings or {host, port} tables')
    endpoints, problems = [], []
    for i, entry in enumerate(raw, 1):
        if isinstance(entry, BrokerEndpoint):
            endpoints.append(entry)
            continue
        if isinstance(entry, str):
            host, sep, port = entry.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                problems.append(f'broker #{i}: {entry!r} is not "host:port"')
                continue
            entry = {"host": host, "port": int(port)}
        try:
            endpoints.append(BrokerEndpoint.model_validate(entry))
        except ValidationError as err:
            for e in err.errors():
                field = ".".join(map(str, e["loc"])) or "entry"
                problems.append(f"broker #{i}: {field}: {_msg(e['msg'])}")
    if problems:
        raise ValueError("; ".join(problems))
    seen: set[tuple[str, int]] = set()
    for endpoint in endpoints:
        if (endpoint.host, endpoint.port) in seen:
            raise ValueError(f"broker {endpoint.label} is listed twice")
        seen.add((endpoint.host, endpoint.port))
    return endpoints


class _Base(BaseSettings):
    #: Section of the TOML file this class reads ([agent], [cloud], [stack]).
    toml_section: ClassVar[str] = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("CUNTONG_CONFIG")
        if config_file:
            sources.append(_TomlSection(settings_cls, Path(config_file), cls.toml_section))
        return tuple(sources)


class _TomlSection(TomlConfigSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], path: Path, section: str) -> None:
        if not path.is_file():
            raise ConfigError(f"CUNTONG_CONFIG names {path}, which is not a file")
        super().__init__(settings_cls, toml_file=path)
        self.toml_data = self.toml_data.get(section, {}) if section else self.toml_data
        self.init_kwargs = self.toml_data


#: The base for settings classes that live in packages above this one (``fleet.settings``):
#: environment variables, then the ``[toml_section]`` of the ``CUNTONG_CONFIG`` file.
SettingsBase = _Base


class AgentSettings(_Base):
    """One terminal's edge agent."""

    model_config = SettingsConfigDict(env_prefix="CUNTONG_AGENT_", extra="forbid")
    toml_section: ClassVar[str] = "agent"

    terminal_id: str
    broker_host: str = "127.0.0.1"
    broker_port: int = Field(1883, ge=1, le=65535)
    #: Development mode's failover list (JSON list or "host:port,host:port"); empty: the
    #: one broker_host/broker_port. Secured, the list comes from the cloud at enrolment.
    brokers: Annotated[list[BrokerEndpoint], NoDecode] = Field(default_factory=list)
    #: Secured: when no broker of the list answers, ask the enrolment API for the current
    #: list at most this often (a fleet that lost its broker must not hammer the API).
    broker_list_every_s: float = Field(30.0, gt=0)
    state_dir: Path = Path("/var/lib/cuntong-agent")
    telemetry_interval_s: float = Field(15.0, gt=0, le=3600)
    keepalive_s: int = Field(30, ge=5, le=3600)
    backoff_base_s: float = Field(1.0, gt=0)
    backoff_cap_s: float = Field(60.0, gt=0)
    #: The flap guard: the reconnect backoff starts over only after the link stayed up
    #: this long; a link that drops sooner keeps the longer delay.
    link_stable_s: float = Field(60.0, ge=0)
    #: How long a new agent version has to connect, report and pass its self-test.
    agent_trial_s: float = Field(120.0, gt=0, le=3600)
    #: The rotating log under ``<state_dir>/logs``: bytes per file and rotated files kept.
    log_max_bytes: int = Field(1_000_000, ge=10_000)
    log_backups: int = Field(5, ge=1, le=50)
    spool_max_rows: int = Field(50_000, ge=10)
    #: A message the cloud has not confirmed storing (``cuntong/v1/t/<id>/ack``) this long
    #: after it was sent is sent again, with everything unconfirmed after it. Reconnecting
    #: sends them again at once anyway.
    ack_timeout_s: float = Field(60.0, gt=0)
    province: str = ""
    city: str = ""
    county: str = ""
    village: str = ""
    hw_model: str = "ZN-E100"
    simulate: bool = False
    #: The factory claim; default ``<state_dir>/claim.json``. With a claim or an installed
    #: identity the agent runs secured (mTLS, signed commands, event MACs).
    claim_file: Path | None = None
    #: JSON peripheral configuration (``firmware_adapters.registry`` format); without it
    #: a simulated terminal uses simulated devices and a real one reports none.
    peripherals_file: Path | None = None
    #: The customer screen page on 127.0.0.1 (``edge.teller.screen``); 0 = not served.
    screen_port: int = Field(0, ge=0, le=65535)
    #: Simulation: a simulated customer asks for a video teller on average this often (s);
    #: 0 = never. Off by default; the demo switches it on for some terminals.
    sim_teller_every_s: float = Field(0.0, ge=0)
    #: The link rate calls are fitted to (kbit/s) until measured: Opus, VP8 bounds, size, fps.
    link_kbps: float = Field(400.0, gt=0)
    #: The packet loss the link is known for (0-1): at 0.03 or more the call is sent for a
    #: lossy link (Opus in-band FEC and 40 ms packets, video headroom for retransmissions).
    link_loss: float = Field(0.0, ge=0, lt=1)
    #: ALSA device for the call's microphone ("" = a test tone in simulation, else "default").
    audio_device: str = ""
    #: The call's microphone and speaker through PulseAudio's echo canceller (the sound
    #: server loads ``edge.teller.echo.module_line``): the source ``aec_mic`` and the sink
    #: ``aec_spk`` replace ``audio_device``.
    echo_cancel: bool = False
    #: Face-aware compression of the call video when the vision models are installed.
    face_aware: bool = True
    #: SCHED_FIFO priority of the liveness check's frame thread (1-99; 0 = ordinary
    #: scheduling). Needs CAP_SYS_NICE (the rendered unit grants it) or RLIMIT_RTPRIO >=
    #: it; without, the thread logs a warning and runs ordinary. The rendered systemd unit
    #: sets it; a development agent runs ordinary.
    liveness_rt_priority: int = Field(0, ge=0, le=99)
    #: Nice value of the call's media send path (the event loop thread, where aiortc sends
    #: RTP, and the encoder threads) while a call publishes (-20..0; 0 = ordinary). Needs
    #: CAP_SYS_NICE (the rendered unit grants it and sets -10); without, the call logs a
    #: warning and runs ordinary (``edge.teller.priority``).
    call_media_nice: int = Field(0, ge=-20, le=0)
    #: The share of ``link_kbps`` the call's retransmissions may use together (0-1; 0 =
    #: every NACK answered). After an outage the teller's side asks for all it missed, more
    #: than the link's queue holds; what does not fit is skipped and a keyframe sent instead.
    call_retransmit_share: float = Field(0.25, ge=0, le=1)
    #: The share of ``link_kbps`` the call's video (its retransmissions included) may take
    #: on the wire at any moment (0-1; 0 = aiortc's bursts): a frame's packets are spread at
    #: that pace so the audio never queues behind a keyframe (``edge.teller.pacing``).
    call_pacing_share: float = Field(0.85, ge=0, le=1)

    @field_validator("terminal_id")
    @classmethod
    def _terminal_id(cls, value: str) -> str:
        if not valid_terminal_id(value):
            raise ValueError("letters, digits, '-' and '_' only, 1-64 characters")
        return value

    @field_validator("brokers", mode="before")
    @classmethod
    def _brokers(cls, value: object) -> list[BrokerEndpoint]:
        return parse_endpoints(value)

    def broker_endpoints(self) -> list[BrokerEndpoint]:
        """The brokers to try in order: ``brokers``, else broker_host:broker_port."""
        return list(self.brokers) or [BrokerEndpoint(host=self.broker_host, port=self.broker_port)]


#: Concurrent recorded calls one Janus node takes by default: what ``bench/calls.py``
#: sustains on a 2-core node (docs/benchmarks/teller.md). Size each node from that bench
#: run on its own hardware.
DEFAULT_NODE_CAPACITY = 50
#: The name of the node the single ``janus_*`` settings define.
FIRST_NODE = "janus-1"


class JanusNode(BaseModel):
    """One Janus media node the teller desk may place calls on (a ``janus_nodes`` entry)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Shown in /healthz and logs; letters, digits, '.', '-' and '_'.
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    #: The Janus HTTP API the cloud uses (e.g. http://10.0.0.12:8088/janus).
    url: str
    #: The Janus API URL participants are given in grants; default ``url``.
    public_url: str = ""
    admin_url: str
    admin_secret: str = Field(min_length=1, repr=False)
    #: VideoRoom's room admin key on that node.
    room_key: str = Field(min_length=1, repr=False)
    #: Where that Janus writes ``.mjr`` recordings (a path on the Janus host).
    rec_dir: Path
    #: Where the cloud reads that folder, when it is mounted elsewhere; default ``rec_dir``.
    read_dir: Path | None = None
    #: The media host's recordings server (``cuntong recordings serve``, e.g.
    #: https://10.0.0.12:8091): the archiver fetches each room's files from there into
    #: ``read_dir`` over mutual TLS (multi-host, no shared folder). Empty: read locally.
    recordings_url: str = ""
    #: Concurrent recorded calls this node takes (see DEFAULT_NODE_CAPACITY).
    capacity: int = Field(DEFAULT_NODE_CAPACITY, gt=0)
    #: Takes no new calls (its calls finish where they are): set before an upgrade.
    draining: bool = False

    @field_validator("recordings_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if value and not value.startswith("https://"):
            raise ValueError("must be an https:// URL (the server takes mutual TLS only)")
        return value

    @field_validator("url", "admin_url", "public_url")
    @classmethod
    def _http(cls, value: str, info: ValidationInfo) -> str:
        optional = info.field_name == "public_url" and not value
        if not optional and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


def parse_nodes(raw: object) -> list[JanusNode]:
    """``janus_nodes`` entries (JSON or TOML tables) as nodes; one ValueError naming every
    bad node (by name, else position) and field, and any name or URL used twice."""
    if not isinstance(raw, list | tuple):
        raise ValueError("must be a list of node tables (name, url, admin_url, ...)")
    nodes, problems = [], []
    for i, entry in enumerate(raw, 1):
        try:
            nodes.append(entry if isinstance(entry, JanusNode) else JanusNode.model_validate(entry))
        except ValidationError as err:
            label = entry.get("name") if isinstance(entry, dict) else None
            where = f"node {label!r}" if label else f"node #{i}"
            for e in err.errors():
                field = ".".join(map(str, e["loc"])) or "entry"
                problems.append(f"{where}: {field}: {_msg(e['msg'])}")
    if problems:
        raise ValueError("; ".join(problems))
    unique_names(nodes)
    return nodes


def _msg(text: str) -> str:
    return text.removeprefix("Value error, ")


def unique_names(nodes: list[JanusNode]) -> None:
    """ValueError when two nodes share a name or a Janus API URL (a node counted twice)."""
    for key in ("name", "url"):
        seen: set[str] = set()
        for node in nodes:
            value = getattr(node, key)
            if value in seen:
                raise ValueError(f"node {node.name!r}: {key} {value!r} is used by another node")
            seen.add(value)


class CloudSettings(_Base):
    """The cloud API and its ingest consumer."""

    model_config = SettingsConfigDict(env_prefix="CUNTONG_CLOUD_", extra="forbid")
    toml_section: ClassVar[str] = "cloud"

    db_url: str = "sqlite://cuntong.sqlite3"
    broker_host: str = "127.0.0.1"
    broker_port: int = Field(1883, ge=1, le=65535)
    #: Broker failover: every broker of the fleet, in the order terminals try them (JSON
    #: list or "host:port,host:port" in the environment, a list in TOML). Every cloud link
    #: subscribes on each. Empty: the one broker_host/broker_port.
    brokers: Annotated[list[BrokerEndpoint], NoDecode] = Field(default_factory=list)
    tsdb_url: str = "http://127.0.0.1:8428"
    tsdb_org: str = "cuntong"
    tsdb_bucket: str = "telemetry"
    tsdb_token: str = ""
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    #: Secured mode: a second, HTTPS listener for terminals (enrolment and renewal), with a
    #: server certificate from our CA. 0 = none.
    terminal_api_port: int = Field(0, ge=0, le=65535)
    terminal_api_host: str = "127.0.0.1"
    #: More names or addresses (comma-separated) the terminals' listener certificate
    #: carries, e.g. the HAProxy address that passes terminals' TLS through to any replica.
    terminal_api_names: str = ""
    ingest: bool = True
    ingest_group: str = "ingest"
    #: Stable MQTT client id, so the broker keeps this consumer's session and queues messages
    #: for it while it restarts. Give each consumer on one host its own.
    ingest_client_id: str = ""
    ingest_batch_size: int = Field(5000, ge=1)
    ingest_flush_ms: int = Field(200, ge=1)
    #: How often each terminal's current health is written to the database (history goes
    #: to the telemetry store on every flush).
    state_flush_ms: int = Field(2000, ge=10)
    max_payload_bytes: int = Field(16 * 1024, ge=256)
    #: A terminal timestamp older than this before the receive time is not trusted (the
    #: message goes to the dead-letter table with the receive time). Long: a terminal's
    #: spool may hold days of backlog after an outage.
    ingest_ts_past_s: float = Field(14 * 24 * 3600.0, gt=0)
    #: ... and one further ahead than this (clock skew of a terminal without time sync).
    ingest_ts_future_s: float = Field(600.0, gt=0)
    #: Largest rise of a terminal's telemetry sequence over its last mark that is believed.
    ingest_max_seq_step: int = Field(10**9, ge=1)
    offline_after_s: float = Field(120.0, gt=0)
    #: An ingest instance not seen alive this long is retired: the leader ends its broker
    #: sessions, which Mosquitto would otherwise keep handing a share of the telemetry
    #: (``Security.end_retired_ingest``). A live instance merely reconnects if ended.
    ingest_retire_after_s: float = Field(300.0, gt=0)
    #: Where the CA, the cloud's keys and service certificates live. Set, the cloud runs
    #: secured: mTLS to the broker, enrolment routes, event MACs required. Unset: the
    #: anonymous development mode.
    state_dir: Path | None = None
    #: This process's service instance (its certificate is ``svc.<instance>``, which the
    #: broker also makes its client id): give each cloud process its own.
    service_instance: str = "api"
    #: Replicas: the cloud's singletons (desk, command sender, rollouts, alerting,
    #: reconcilers) run on the one API replica holding the database lease (``cloud.lease``);
    #: a leader that stops renewing is replaced after at most this long.
    lease_ttl_s: float = Field(3.0, gt=0.2, le=60)
    #: Bearer token for the operator routes (claims, revocation). Empty: routes not mounted.
    admin_token: str = ""
    crypto_suite: str = "standard"
    #: Enrolment attempts per minute from one address (claim-token guessing). A factory
    #: line or a village cell behind one NAT address enrols many terminals: size it.
    enrol_per_minute: int = Field(20, ge=1)
    #: Where terminals reach the broker (handed over at enrolment); defaults to broker_host.
    public_broker_host: str = ""
    #: The teller desk's media server (Janus HTTP API, e.g. http://127.0.0.1:8088/janus).
    #: Empty: no desk runs and the teller routes answer 503.
    janus_url: str = ""
    #: The Janus API URL terminals and teller browsers are given (e.g. the reverse proxy's
    #: https://bank.example/janus); default janus_url.
    janus_public_url: str = ""
    janus_admin_url: str = ""
    janus_admin_secret: str = Field("", repr=False)
    #: VideoRoom's room admin key: only the desk creates rooms.
    janus_room_key: str = Field("", repr=False)
    #: Where Janus writes ``.mjr`` recordings (the archiver must run on the Janus host).
    janus_rec_dir: Path | None = None
    #: Concurrent recorded calls node janus-1 takes (size it with bench/calls.py).
    janus_capacity: int = Field(DEFAULT_NODE_CAPACITY, gt=0)
    #: More Janus nodes, as a JSON list in the environment or ``[[cloud.janus_nodes]]``
    #: tables in the TOML file: see ``JanusNode``. With the ``janus_*`` settings above
    #: too, those are node janus-1 and these come after it.
    janus_nodes: list[JanusNode] = Field(default_factory=list)
    #: Where archived call recordings go; default ``<state_dir>/recordings`` (or a temp dir).
    archive_dir: Path | None = None
    #: coturn's ``static-auth-secret`` and the TURN URLs put in media grants; empty: none.
    turn_secret: str = Field("", repr=False)
    turn_urls: list[str] = Field(default_factory=list)
    #: A terminal offline during a call gets this long to come back before the call fails.
    terminal_grace_s: float = Field(30.0, gt=0)
    #: A teller whose screen disconnected mid-call gets this long before it is hung up.
    teller_grace_s: float = Field(30.0, gt=0)
    #: A teller who declined (or did not answer) an offer is not offered that customer
    #: again for this long (``routing.Policy.reoffer_cooldown``).
    desk_reoffer_cooldown_s: float = Field(60.0, gt=0)
    #: The bank's core system (``corebank`` adapter; the simulator in tests and ``cuntong
    #: up``). Empty: businesses whose catalogue entry posts to the core cannot complete.
    core_url: str = ""
    #: File holding the core's bearer secret (mode 0600, as ``CoreBankServer`` writes it).
    core_secret_file: Path | None = None
    #: Each attempt's timeout, and how many attempts (retried with backoff, one key).
    core_timeout_s: float = Field(3.0, gt=0)
    core_attempts: int = Field(4, ge=1, le=20)
    #: How often postings whose answer was lost are reconciled (also once at start-up).
    core_reconcile_s: float = Field(30.0, gt=0)
    #: The business catalogue a bank supplies (TOML or JSON, see ``cloud.catalogue``); unset:
    #: the built-in ``cloud/businesses.toml``. Its variable keeps its first name,
    #: ``CUNTONG_CATALOGUE`` (no ``CLOUD_``).
    catalogue: Path | None = Field(
        None, validation_alias=AliasChoices("catalogue", "CUNTONG_CATALOGUE")
    )
    #: The bank's gateway to the citizen identity service (``idcheck``), for the cloud's own
    #: ``id_online_check``; unset, that step waits for a supervisor's override.
    idcheck_url: str = ""
    #: Its shared HMAC key (as text) and the key id the cloud signs with.
    idcheck_key: str = ""
    idcheck_key_id: str = "cloud"
    #: The HSM service (``hsm``) the ``card_read`` and ``pin_entry`` steps are checked by
    #: (ARQC, PIN), with the file holding its bearer secret (``STATE/hsm.secret``, 0600).
    #: Unset (or no ``core_url``): those steps never pass on their own; a supervisor
    #: overrides them.
    hsm_url: str = ""
    hsm_secret_file: Path | None = None
    #: The names of the issuer's ARQC master key and the PIN verification key in the HSM;
    #: a terminal's PIN key is ``TPK:<terminal>`` (as the rotation job keeps it).
    hsm_imk: str = "IMK-AC:issuer"
    hsm_pvk: str = "PVK:bank"

    @field_validator("crypto_suite")
    @classmethod
    def _suite(cls, value: str) -> str:
        if value not in ("standard", "sm"):
            raise ValueError("must be 'standard' or 'sm' (国密 SM3/SM4)")
        return value

    @field_validator("admin_token")
    @classmethod
    def _token(cls, value: str) -> str:
        if value and len(value) < 24:
            raise ValueError("must be at least 24 characters (or empty to disable)")
        return value

    @model_validator(mode="after")
    def _janus_complete(self) -> CloudSettings:
        if self.janus_url:
            missing = [
                name
                for name in ("janus_admin_url", "janus_admin_secret", "janus_room_key")
                if not getattr(self, name)
            ]
            if self.janus_rec_dir is None:
                missing.append("janus_rec_dir")
            if missing:
                raise ValueError(f"janus_url is set, so {', '.join(missing)} must be too")
        try:
            nodes = self.media_nodes()
        except ValidationError as err:
            bad = "; ".join(f"janus_{e['loc'][0]}: {_msg(e['msg'])}" for e in err.errors())
            raise ValueError(f"node {FIRST_NODE!r} (the janus_* settings): {bad}") from err
        try:
            unique_names(nodes)
        except ValueError as err:
            raise ValueError(f"janus_nodes: {err} ({FIRST_NODE} is janus_url's node)") from err
        return self

    @field_validator("janus_nodes", mode="before")
    @classmethod
    def _nodes(cls, value: object) -> list[JanusNode]:
        return parse_nodes(value)

    def media_nodes(self) -> list[JanusNode]:
        """Every Janus node the desk uses: janus-1 from the ``janus_*`` settings (when
        ``janus_url`` is set), then ``janus_nodes``. Empty: no desk."""
        nodes = list(self.janus_nodes)
        if self.janus_url:
            assert self.janus_rec_dir is not None  # _janus_complete
            first = JanusNode(
                name=FIRST_NODE,
                url=self.janus_url,
                public_url=self.janus_public_url,
                admin_url=self.janus_admin_url,
                admin_secret=self.janus_admin_secret,
                room_key=self.janus_room_key,
                rec_dir=self.janus_rec_dir,
                capacity=self.janus_capacity,
            )
            nodes.insert(0, first)
        return nodes

    @field_validator("brokers", mode="before")
    @classmethod
    def _brokers(cls, value: object) -> list[BrokerEndpoint]:
        return parse_endpoints(value)

    def broker_endpoints(self) -> list[BrokerEndpoint]:
        """Every broker: ``brokers``, else broker_host:broker_port (with public_broker_host)."""
        if self.brokers:
            return list(self.brokers)
        single = BrokerEndpoint(
            host=self.broker_host, port=self.broker_port, public_host=self.public_broker_host
        )
        return [single]

    @field_validator("db_url")
    @classmethod
    def _db_url(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgres://", "asyncpg://")):
            raise ValueError("must start with sqlite://, postgres:// or asyncpg://")
        return value


T = TypeVar("T", bound="_Base")


def load(cls: type[T], **overrides: Any) -> T:
    """Build settings or raise ConfigError naming each bad value."""
    try:
        return cls(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as err:
        prefix = cls.model_config.get("env_prefix", "")
        problems = "; ".join(
            # A check across settings has no location: its message names them.
            (f"{prefix}{'.'.join(map(str, e['loc'])).upper()}: " if e["loc"] else "") + e["msg"]
            for e in err.errors()
        )
        raise ConfigError(f"invalid {cls.__name__}: {problems}") from err
