"""The soak ledger's rules (ledger.py) catch what they name: each test plays a
short history with one fault of popgate's making and expects that rule's
violation, and the same history without the fault to pass. `make soak-ci`
runs these before the soak itself."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from ledger import Device, Ledger  # noqa: E402


def setup(group="new", n=2):
    led = Ledger()
    devs = [Device("u", f"d{i + 1}", group, reads=True) for i in range(n)]
    for i in range(1, 4):
        led.learn("u", f"uidl{i}", f"soak-{i}")
        led.delivered[f"soak-{i}"] = "u"
    return led, devs


def rules(led):
    return sorted({v.split(":")[0] for v in led.violations})


def test_a_committed_message_offered_again_is_a_duplicate():
    led, (d, _) = setup()
    led.check_offer(d, ["uidl1"], 0, 1)
    led.session_end(d, "ok", {"soak-1"}, set(), 2)
    led.check_offer(d, ["uidl2"], 3, 4)
    assert led.violations == []
    led.check_offer(d, ["uidl1", "uidl2"], 5, 6)
    assert rules(led) == ["N1"]


def test_a_hidden_message_offered_again():
    led, (d, _) = setup()
    led.session_end(d, "ok", {"soak-1"}, {"soak-1"}, 2)
    led.check_offer(d, ["uidl1"], 3, 4)
    assert "N2" in rules(led)


def test_a_session_without_quit_must_change_nothing():
    led, (d, _) = setup()
    led.session_end(d, "drop", {"soak-1", "soak-2"}, set(), 2)
    led.check_offer(d, ["uidl1", "uidl2"], 3, 4)
    assert led.violations == []
    led.session_end(d, "drop", {"soak-1"}, set(), 5)
    led.check_offer(d, ["uidl2"], 6, 7)
    assert rules(led) == ["N3"]


def test_a_message_webmail_expunged_may_vanish_after_a_drop():
    led, (d, _) = setup()
    led.session_end(d, "drop", {"soak-1"}, set(), 2)
    led.webmail_expunged["soak-1"] = 2.5
    led.check_offer(d, [], 3, 4)
    assert led.violations == []


def test_a_refused_quit_commits_all_or_nothing():
    led, (d, _) = setup()
    led.session_end(d, "err", {"soak-1", "soak-2"}, set(), 2)
    led.check_offer(d, ["uidl1", "uidl2"], 3, 4)      # nothing committed
    led.session_end(d, "err", {"soak-1", "soak-2"}, set(), 5)
    led.check_offer(d, [], 6, 7)                      # all committed (the WAIT case)
    assert led.violations == []
    assert led.counts["quit-err-committed"] == 1
    led.check_offer(d, ["uidl1"], 8, 9)               # ... so offering it again is a duplicate
    assert rules(led) == ["N1"]
    led2, (e, _) = setup()
    led2.session_end(e, "noreply", {"soak-1", "soak-2"}, set(), 2)
    led2.check_offer(e, ["uidl2"], 3, 4)
    assert rules(led2) == ["N4"]


def test_unread_view_hides_what_any_device_committed_before_login():
    led, (d1, d2) = setup("unread")
    led.session_end(d1, "ok", {"soak-1"}, set(), 5)
    led.check_offer(d2, ["uidl1"], 4, 6)              # logged in before that QUIT: allowed
    assert led.violations == []
    led.check_offer(d2, ["uidl1"], 6, 7)
    led.webmail_seen["soak-2"] = 1
    led.check_offer(d2, ["uidl2"], 8, 9)
    assert len(led.violations) == 2 and rules(led) == ["U1"]


def test_view_all_never_lists_what_a_quit_expunged():
    led, (d1, d2) = setup("all")
    led.session_end(d1, "ok", {"soak-1"}, {"soak-1"}, 5)
    led.check_offer(d2, ["uidl1"], 6, 7)
    assert rules(led) == ["A1"]


def test_end_checks_loss_duplicates_upstream_and_redis():
    led, (d1, d2) = setup()
    for d in (d1, d2):
        led.session_end(d, "ok", {"soak-1", "soak-2", "soak-3"}, set(), 2)
    seen = {"\\Seen"}
    upstream = {"u": {"soak-1": seen, "soak-2": seen, "soak-3": seen}}
    full = {("u", "d1"): (3, 0), ("u", "d2"): (3, 0)}
    assert led.check_end([d1, d2], upstream, full) == []

    led, (d1, d2) = setup()
    led.session_end(d1, "ok", {"soak-1", "soak-2", "soak-3"}, set(), 2)
    led.session_end(d1, "ok", {"soak-1"}, set(), 3)   # downloaded twice, both +OK
    led.session_end(d2, "drop", {"soak-1"}, set(), 2)
    led.session_end(d2, "ok", {"soak-1", "soak-2"}, set(), 3)   # never got soak-3
    upstream = {"u": {"soak-1": seen, "soak-2": set(), "soak-3": seen}}   # soak-2 not \Seen
    short = {("u", "d1"): (3, 0), ("u", "d2"): (1, 0)}                    # d2's got set short
    found = rules(led) + sorted({v.split(":")[0] for v in led.check_end([d1, d2], upstream, short)})
    assert set(found) == {"N5", "C1", "C2"}
    assert any("never retrieved soak-3" in v for v in led.violations)
    assert not any("d2 retrieved soak-1" in v for v in led.violations)   # drop then +OK: allowed


def test_a_delivered_message_gone_upstream_is_lost():
    led, (d1, _) = setup()
    led.session_end(d1, "ok", {"soak-1", "soak-2", "soak-3"}, set(), 2)
    led.check_end([d1], {"u": {"soak-1": {"\\Seen"}, "soak-2": {"\\Seen"}}}, {("u", "d1"): (2, 0)})
    assert any("soak-3 is gone upstream" in v for v in led.violations)
