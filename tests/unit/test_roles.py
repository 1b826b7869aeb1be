"""Which tokens an account may hold, and the role a token acts with when its account's role
changed after it was made."""

from __future__ import annotations

import pytest

from corral.spec.accounts import Role, effective_role, may_hold

A, U, V, G = Role.ADMIN, Role.USER, Role.VIEWER, Role.AGENT


@pytest.mark.parametrize(
    ("account", "token", "held"),
    [
        (A, A, True),
        (A, U, True),
        (A, V, True),
        (A, G, True),  # an admin makes agent tokens for the nodes
        (U, U, True),
        (U, V, True),  # a read-only token for a wall screen
        (U, A, False),
        (U, G, False),
        (V, V, True),
        (V, U, False),
        (G, G, True),  # an agent account holds agent tokens
        (G, V, False),
    ],
)
def test_a_token_may_narrow_its_accounts_role_never_widen_it(
    account: Role, token: Role, held: bool
) -> None:
    assert may_hold(account, token) is held


@pytest.mark.parametrize(
    ("account", "token", "acts_as"),
    [
        (A, A, A),
        (U, A, U),  # an admin made a user acts as a user with their old admin tokens
        (V, U, V),
        (U, V, V),
        (A, G, G),
        (U, G, None),  # an agent token of an account no longer an admin stands for nobody
        (G, U, None),
    ],
)
def test_a_token_acts_with_the_lesser_of_its_role_and_its_accounts(
    account: Role, token: Role, acts_as: Role | None
) -> None:
    assert effective_role(account, token) is acts_as
