"""Member state transitions, kept in one table and checked by `check_transition`.

          initiate/config                    initial sync done
  STARTUP ---------------> STARTUP2 -------------------------> SECONDARY <----+
     |                        ^                               |  ^   |  ^      |
     | arbiter                | resync / too stale            |  |   |  |      | minValid
     v                        |                       elected |  |   |  |      | reached
  ARBITER                 RECOVERING <------------------------+--|---+  |      |
                              ^      maintenance / stale         |      |      |
                              |                         stepdown |      |      |
                           ROLLBACK <--- diverged ---- SECONDARY  PRIMARY   ROLLBACK
  any state --(not in config)--> REMOVED --(back in config)--> STARTUP2 / SECONDARY / ARBITER

Pure: no I/O.
"""

from __future__ import annotations

from replnode.domain import MemberState as S
from replnode.errors import invariant

ALLOWED_TRANSITIONS: dict[S, frozenset[S]] = {
    S.STARTUP: frozenset({S.STARTUP2, S.SECONDARY, S.ARBITER, S.REMOVED, S.RECOVERING}),
    S.STARTUP2: frozenset({S.STARTUP2, S.SECONDARY, S.RECOVERING, S.REMOVED}),
    S.SECONDARY: frozenset({S.PRIMARY, S.RECOVERING, S.ROLLBACK, S.REMOVED, S.STARTUP2}),
    S.PRIMARY: frozenset({S.SECONDARY, S.REMOVED}),
    S.RECOVERING: frozenset({S.SECONDARY, S.ROLLBACK, S.STARTUP2, S.REMOVED}),
    S.ROLLBACK: frozenset({S.RECOVERING, S.SECONDARY, S.REMOVED, S.STARTUP2}),
    S.ARBITER: frozenset({S.REMOVED}),
    S.REMOVED: frozenset({S.STARTUP2, S.SECONDARY, S.ARBITER, S.RECOVERING}),
    S.UNKNOWN: frozenset(),
    S.DOWN: frozenset(),
}


def check_transition(old: S, new: S) -> None:
    """Raise InvariantViolation for a move the table does not allow."""
    invariant(new in ALLOWED_TRANSITIONS[old], f"illegal state transition {old.name}->{new.name}")
