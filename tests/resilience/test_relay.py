"""The test relay itself (tests/support.py ``DatabaseProxy``): an outage is its own. Tests
that cut a relay run beside each other on one server (xdist), so one relay's cut must end
the sessions that came through it and no others."""

from __future__ import annotations

import psycopg
import pytest

from tests.support import DatabaseProxy


def _session_through(proxy: DatabaseProxy) -> psycopg.Connection:
    return psycopg.connect(proxy.url().replace("postgres://", "postgresql://"), autocommit=True)


@pytest.mark.django_db(transaction=True)
def test_a_cut_ends_the_sessions_of_its_own_relay_only():
    cut, beside = DatabaseProxy(), DatabaseProxy()
    through_cut, through_beside = _session_through(cut), _session_through(beside)
    try:
        cut.cut()
        with pytest.raises(psycopg.OperationalError):
            through_cut.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError):
            _session_through(cut)
        assert through_beside.execute("SELECT 1").fetchone() == (1,)
        cut.restore()
        assert _session_through(cut).execute("SELECT 1").fetchone() == (1,)
    finally:
        for session in (through_cut, through_beside):
            session.close()
        cut.close()
        beside.close()
