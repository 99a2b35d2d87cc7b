"""The enrolment wire format (JSON over HTTPS), shared by the router and the terminal.

``EnrolmentRequest``: first boot, authorised by a claim token. ``RenewalRequest``:
rotation, authorised by a signature of the current device key over
``renewal_message(...)`` (so renewal needs no client-certificate TLS on the HTTP side).
Both are answered by an ``EnrolmentResponse``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_NAME = Field(min_length=1, max_length=64)


class Region(BaseModel):
    """Where the terminal stands: 省 / 市 / 县 / 村."""

    province: str = _NAME
    city: str = _NAME
    county: str = _NAME
    village: str = _NAME

    def path(self) -> str:
        return "/".join((self.province, self.city, self.county, self.village))


class EnrolmentRequest(BaseModel):
    claim_token: str = Field(min_length=1, max_length=256)
    terminal_id: str = Field(min_length=1, max_length=64)
    hardware_model: str = _NAME
    region: Region
    csr_pem: str = Field(default="", max_length=8192)


class RenewalRequest(BaseModel):
    terminal_id: str = Field(min_length=1, max_length=64)
    certificate_pem: str = Field(max_length=16384)
    csr_pem: str = Field(max_length=8192)
    signed_at: int  # unix seconds; the cloud accepts a few minutes of skew
    signature: str = Field(max_length=512)  # hex ECDSA-SHA256 by the current key


class BrokerAddress(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str
    port: int
    #: Name to verify in the broker's certificate (may differ from host behind NAT).
    server_name: str


class BrokerList(BaseModel):
    """``GET /api/v1/enrol/brokers``: the brokers a terminal tries, in order (failover).

    A terminal that reached none of its brokers asks for this over the enrolment API (TLS
    verified against the root CA of its claim), so a broker that moved is followed."""

    brokers: list[BrokerAddress] = Field(min_length=1)


class EnrolmentResponse(BaseModel):
    terminal_id: str
    certificate_pem: str  # leaf + issuing CA
    ca_pem: str  # root CA, the terminal's trust anchor
    not_after: str  # ISO 8601
    #: The first broker, for terminals that predate failover lists.
    broker: BrokerAddress
    #: Every broker in the order to try them (``broker`` first); empty from an older cloud.
    brokers: list[BrokerAddress] = Field(default_factory=list)
    config: dict[str, Any]
    suite: str  # crypto suite name, see common.suite
    command_key_pem: str  # cloud's command-signing public key
    event_mac_key: str  # hex, this terminal's event MAC key


def broker_addresses(info: dict[str, Any]) -> list[BrokerAddress]:
    """The failover list of a stored enrolment answer (``enrolment.json``): ``brokers``, or
    the single ``broker`` an older cloud handed over."""
    raw = info.get("brokers") or [info["broker"]]
    return [BrokerAddress.model_validate(entry) for entry in raw]


def renewal_message(terminal_id: str, csr_pem: bytes, signed_at: int) -> bytes:
    """The bytes the current device key signs to ask for a renewal."""
    return (
        b"cuntong-renew\n"
        + terminal_id.encode()
        + b"\n"
        + str(signed_at).encode()
        + b"\n"
        + (csr_pem)
    )


class FactoryClaim(BaseModel):
    """What the factory writes onto a terminal (``claim.json``, 0600) before it ships.

    The region may be left for the installer to fill in on site; the claim token is the
    batch's; ``ca_pem`` lets the terminal verify the enrolment API's TLS certificate.
    """

    enrol_url: str
    ca_pem: str
    claim_token: str
    terminal_id: str
    hardware_model: str
    region: Region

    def request(self) -> EnrolmentRequest:
        return EnrolmentRequest(
            claim_token=self.claim_token,
            terminal_id=self.terminal_id,
            hardware_model=self.hardware_model,
            region=self.region,
        )
