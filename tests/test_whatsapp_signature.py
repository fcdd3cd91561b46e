"""How the webhook reads Twilio's post, against the reference implementations on random
input: the form as `parse_qsl` reads it, and the signature as twilio's own RequestValidator
checks it (ours computes it once where the SDK computes it twice)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from bot.channels.whatsapp import MAX_FIELDS, Form, parse_body, validate_signature

TOKEN = "12345678901234567890123456789012"
URLS = st.sampled_from(
    [
        "https://bot.example.org/webhooks/whatsapp",
        "https://bot.example.org:443/webhooks/whatsapp",
        "http://127.0.0.1:8000/webhooks/whatsapp",
        "http://localhost/webhooks/whatsapp/status",
        "https://bot.example.org:8443/webhooks/whatsapp?x=1&y=%20",
    ]
)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
FIELDS = st.lists(
    st.tuples(st.sampled_from(["Body", "From", "MessageSid", "NumMedia", "a", "B", ""]), TEXT),
    max_size=8,
)


class _Multi(dict[str, str]):
    """A multidict as twilio's validator reads one (getall)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs

    def getall(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name]


def _sdk(url: str, pairs: list[tuple[str, str]], signature: str) -> bool:
    return bool(RequestValidator(TOKEN).validate(url, _Multi(pairs), signature))


def _signed(url: str, pairs: list[tuple[str, str]], token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, _Multi(pairs))


@settings(max_examples=300, deadline=None)
@given(url=URLS, pairs=FIELDS, sign_url=URLS, tamper=st.booleans(), other_token=st.booleans())
def test_it_agrees_with_twilios_validator(
    url: str, pairs: list[tuple[str, str]], sign_url: str, tamper: bool, other_token: bool
) -> None:
    signature = _signed(sign_url, pairs, "f" * 32 if other_token else TOKEN)
    if tamper:
        signature = signature[:-2] + ("A=" if signature[-2:] != "A=" else "B=")
    form = parse_body(urlencode(pairs).encode())
    assert validate_signature(TOKEN, url, form, signature) == _sdk(url, pairs, signature)


@given(url=URLS, pairs=FIELDS)
def test_a_signature_twilio_made_holds_with_or_without_the_port(
    url: str, pairs: list[tuple[str, str]]
) -> None:
    form = Form(pairs)
    assert validate_signature(TOKEN, url, form, _signed(url, pairs))
    with_port = url.replace("bot.example.org/", "bot.example.org:443/")
    assert validate_signature(TOKEN, url, form, _signed(with_port, pairs))


def test_nothing_holds_without_a_token_or_a_signature() -> None:
    form = Form([("Body", "1")])
    url = "https://bot.example.org/webhooks/whatsapp"
    assert not validate_signature("", url, form, _signed(url, [("Body", "1")]))
    assert not validate_signature(TOKEN, url, form, None)
    assert not validate_signature(TOKEN, url, form, "")
    assert not validate_signature(TOKEN, url, form, "é" * 28)


@given(st.text(st.sampled_from("ab=&+%2041é\u20acE9z"), max_size=40))
def test_a_body_is_read_as_parse_qsl_reads_it(body: str) -> None:
    assert parse_body(body.encode()).pairs == parse_qsl(body, keep_blank_values=True)


def test_a_body_that_is_no_form_is_refused() -> None:
    with pytest.raises(ValueError, match="fields"):
        parse_body(b"a=1" + b"&a=1" * MAX_FIELDS)
    with pytest.raises(UnicodeDecodeError):
        parse_body(b"Body=\xff")
    assert len(parse_body(b"a=1" + b"&a=1" * (MAX_FIELDS - 1)).pairs) == MAX_FIELDS
