"""The 256-byte text block of a resident ID card (UCS-2 little-endian, space padded).

    offset  bytes  field                     offset  bytes  field
    0       30     name (15 chars)           122     36     ID number (18 chars)
    30      2      sex code                  158     30     issuing authority
    32      4      ethnicity code            188     16     valid from YYYYMMDD
    36      16     birth date YYYYMMDD       204     16     valid until YYYYMMDD or 长期
    52      70     address (35 chars)        220     36     reserved (card-type flag at 248)

The ID number's last character is the ISO 7064 MOD 11-2 check digit (GB 11643), verified by
`parse` unless `verify=False` (the reader adapter leaves that refusal to `check.validate`, which
gives the customer a sentence instead of a reader fault).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from firmware_adapters.errors import FieldInvalid
from firmware_adapters.masking import mask_id_number

TEXT_LEN = 256
#: (name, offset, length in bytes)
FIELDS: tuple[tuple[str, int, int], ...] = (
    ("name", 0, 30),
    ("sex", 30, 2),
    ("ethnicity", 32, 4),
    ("birth", 36, 16),
    ("address", 52, 70),
    ("id_number", 122, 36),
    ("issuer", 158, 30),
    ("valid_from", 188, 16),
    ("valid_until", 204, 16),
    ("reserved", 220, 36),
)
CARD_TYPE_OFFSET = 248
LONG_TERM = "长期"

#: GB/T 2261.1 sex codes.
SEX: dict[str, str] = {"0": "unknown", "1": "male", "2": "female", "9": "unspecified"}

#: GB/T 3304 ethnicity codes (the card stores the code, the reader software shows the name).
_ETHNIC_NAMES = (
    "汉 蒙古 回 藏 维吾尔 苗 彝 壮 布依 朝鲜 满 侗 瑶 白 土家 哈尼 哈萨克 傣 黎 傈僳 佤 畲 "
    "高山 拉祜 水 东乡 纳西 景颇 柯尔克孜 土 达斡尔 仫佬 羌 布朗 撒拉 毛南 仡佬 锡伯 阿昌 "
    "普米 塔吉克 怒 乌孜别克 俄罗斯 鄂温克 德昂 保安 裕固 京 塔塔尔 独龙 鄂伦春 赫哲 门巴 "
    "珞巴 基诺"
)
ETHNICITY: dict[str, str] = {
    f"{i:02d}": name for i, name in enumerate(_ETHNIC_NAMES.split(), start=1)
}

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """GB 11643 check character for the first 17 digits of a resident ID number."""
    if len(first17) != 17 or not first17.isdigit():
        raise FieldInvalid("an ID number starts with 17 digits")
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def verify_id_number(number: str) -> None:
    """Raise FieldInvalid unless the 18-character ID number carries a correct check digit."""
    if len(number) != 18:
        raise FieldInvalid(f"ID number has {len(number)} characters, not 18")
    if id_check_digit(number[:17]) != number[17]:
        raise FieldInvalid(f"ID number {mask_id_number(number)} fails its check digit")


@dataclass(frozen=True)
class IdCardText:
    """The decoded text of one card; repr shows masked identifiers only."""

    name: str
    sex: str
    ethnicity: str
    birth_date: dt.date
    address: str
    id_number: str
    issuer: str
    valid_from: dt.date
    valid_until: dt.date | None  # None = long-term (长期)
    card_type: str = " "

    def __repr__(self) -> str:
        return (
            f"IdCardText(name={self.name[:1]}**, id_number={mask_id_number(self.id_number)}, "
            f"sex={self.sex}, valid_until={self.valid_until})"
        )

    @property
    def sex_text(self) -> str:
        return SEX.get(self.sex, "unknown")

    @property
    def ethnicity_text(self) -> str:
        return ETHNICITY.get(self.ethnicity, "其他")

    def to_bytes(self) -> bytes:
        values = {
            "name": self.name,
            "sex": self.sex,
            "ethnicity": self.ethnicity,
            "birth": _date_text(self.birth_date),
            "address": self.address,
            "id_number": self.id_number,
            "issuer": self.issuer,
            "valid_from": _date_text(self.valid_from),
            "valid_until": LONG_TERM if self.valid_until is None else _date_text(self.valid_until),
            "reserved": "",
        }
        out = bytearray()
        for name, _offset, length in FIELDS:
            raw = values[name].encode("utf-16-le")
            if len(raw) > length:
                raise FieldInvalid(f"{name} does not fit in {length} bytes")
            out += raw + " ".encode("utf-16-le") * ((length - len(raw)) // 2)
        out[CARD_TYPE_OFFSET : CARD_TYPE_OFFSET + 2] = self.card_type.encode("utf-16-le")
        return bytes(out)

    @classmethod
    def parse(cls, data: bytes, verify: bool = True) -> IdCardText:
        if len(data) != TEXT_LEN:
            raise FieldInvalid(f"text block of {len(data)} bytes, expected {TEXT_LEN}")
        try:
            raw = {name: data[o : o + n].decode("utf-16-le") for name, o, n in FIELDS}
        except UnicodeDecodeError as err:
            raise FieldInvalid(f"text block is not UCS-2: {err}") from err
        card_type = data[CARD_TYPE_OFFSET : CARD_TYPE_OFFSET + 2].decode("utf-16-le")
        if card_type not in (" ", "\x00", "J"):
            raise FieldInvalid(f"card type {card_type!r} (foreigner card) is not supported")
        f = {k: v.rstrip(" \x00") for k, v in raw.items()}
        if verify:
            verify_id_number(f["id_number"])
        if f["sex"] not in SEX:
            raise FieldInvalid(f"sex code {f['sex']!r} unknown")
        return cls(
            name=f["name"],
            sex=f["sex"],
            ethnicity=f["ethnicity"],
            birth_date=_parse_date(f["birth"], "birth date"),
            address=f["address"],
            id_number=f["id_number"],
            issuer=f["issuer"],
            valid_from=_parse_date(f["valid_from"], "valid from"),
            valid_until=(
                None
                if f["valid_until"] == LONG_TERM
                else _parse_date(f["valid_until"], "valid until")
            ),
            card_type="J" if card_type == "J" else " ",
        )


def _date_text(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def _parse_date(text: str, what: str) -> dt.date:
    if len(text) != 8 or not text.isdigit():
        raise FieldInvalid(f"{what} {text!r} is not YYYYMMDD")
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError as err:
        raise FieldInvalid(f"{what} {text!r} is not a calendar date") from err
