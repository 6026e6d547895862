"""Device cookies (dashboard/device_trust.py): pure signing, matching and ageing rules."""

from __future__ import annotations

from dashboard.device_trust import LIFETIME, MAX_ENTRIES, DeviceTrust

NOW = 1_800_000_000.0
trust = DeviceTrust(b"k" * 32)


def test_a_cookie_trusts_its_account_in_any_spelling_and_no_other() -> None:
    cookie = trust.issue(None, "Sup", now=NOW)
    assert trust.device_for(cookie, " sup ", now=NOW)
    assert trust.device_for(cookie, "olga", now=NOW) == ""
    assert "sup" not in cookie.lower()  # the cookie names nobody


def test_a_changed_signature_another_key_or_garbage_is_untrusted() -> None:
    cookie = trust.issue(None, "sup", now=NOW)
    assert trust.device_for(cookie[:-1] + ("0" if cookie[-1] != "0" else "1"), "sup", now=NOW) == ""
    assert DeviceTrust(b"x" * 32).device_for(cookie, "sup", now=NOW) == ""
    for garbage in ("", "...", "a.b.c.d", "~~~", None):
        assert trust.device_for(garbage, "sup", now=NOW) == ""


def test_an_entry_ages_out_and_a_sign_in_renews_it() -> None:
    cookie = trust.issue(None, "sup", now=NOW)
    later = NOW + LIFETIME.total_seconds() + 1
    assert trust.device_for(cookie, "sup", now=later) == ""
    assert trust.device_for(trust.issue(cookie, "sup", now=later), "sup", now=later)


def test_one_browser_keeps_the_last_few_accounts() -> None:
    cookie = None
    names = [f"user{n}" for n in range(MAX_ENTRIES + 1)]
    for name in names:
        cookie = trust.issue(cookie, name, now=NOW)
    assert trust.device_for(cookie, names[0], now=NOW) == ""
    assert all(trust.device_for(cookie, name, now=NOW) for name in names[1:])
    # A new sign-in replaces the account's entry (a new device id), never adds a second one.
    again = trust.issue(cookie, names[-1], now=NOW)
    assert again.count("~") == cookie.count("~")  # type: ignore[union-attr]
    assert trust.device_for(again, names[-1], now=NOW) != trust.device_for(
        cookie, names[-1], now=NOW
    )
