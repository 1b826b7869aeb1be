"""``corral exec -it``: a shell on a terminal of its own inside a running task, driven from a
real pseudo-terminal as a user types at one, on the process and the Docker driver."""

from __future__ import annotations

import io
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.client.config import ClientConfig
from corral.client.execs import exec_task
from corral.spec.jobs import JobSpec
from tests.integration.test_gangs_docker import running_box
from tests.support.cluster import CORRAL, Cluster, corral_env, shell_wait_for
from tests.support.terminal import Terminal

pytestmark = pytest.mark.integration


@pytest.fixture
def terminal_of(cluster: Cluster) -> Iterator[list[Terminal]]:
    """Terminals the test opens, closed after it."""
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


def exec_on_terminal(c: Cluster, opened: list[Terminal], task_id: str) -> Terminal:
    """``corral exec -it TASK -- sh`` on a new terminal of 100 × 30."""
    argv = [*CORRAL, "exec", "-it", task_id, "--", "sh"]
    terminal = Terminal(argv, corral_env(CORRAL_URL=c.url, CORRAL_TOKEN=c.token), 100, 30)
    opened.append(terminal)
    return terminal


def drive_a_shell(terminal: Terminal) -> None:
    """Type at the remote shell: its terminal, its window as it follows ours, ^C, exit."""
    cooked = terminal.modes()
    terminal.expect(r"[#$] ")  # the shell's prompt
    terminal.type('tty; echo "answer $((6*7))"; stty size\r')
    found = terminal.expect(r"(/dev/pts/\d+)\r\nanswer 42\r\n30 100\r\n")
    assert found.group(1).startswith(b"/dev/pts/")
    # Our terminal is raw while the exec runs: keys are echoed by the remote terminal alone.
    assert terminal.modes()[3] & termios.ECHO == 0
    terminal.resize(120, 40)
    # The new size travels to the remote terminal (SIGWINCH, the client, the master, the agent)
    # while the shell goes on: ask until it has arrived.
    for _ in range(50):
        terminal.type("stty size\r")
        if terminal.expect(r"(\d+ \d+)\r\n").group(1) == b"40 120":
            break
    else:
        raise AssertionError(f"the window never became 120 × 40:\n{terminal.seen!r}")
    # ^C reaches the remote terminal's foreground job, not corral exec (once that job runs: it
    # says so first, from its own process group).
    terminal.type("sh -c 'echo sl\"\"eeping; exec sleep 600'\r")
    terminal.expect(r"sleeping\r\n")
    terminal.type(b"\x03")
    terminal.type('echo "after $((1+1))"\r')
    terminal.expect(r"after 2\r\n")
    terminal.type("exit 3\r")
    assert terminal.wait() == 3, terminal.seen
    assert terminal.modes() == cooked  # our terminal is as it was


def test_exec_it_gives_a_shell_on_a_terminal_in_a_process_task(
    cluster: Cluster, terminal_of: list[Terminal], tmp_path: Path
) -> None:
    c = cluster
    c.add_agent("node-a", cpus=1)
    with c.client() as client:
        spec = {"name": "held", "task": {"shell": shell_wait_for(tmp_path / "done"), "cpus": 0.5}}
        client.create_job(JobSpec.model_validate(spec))
    c.wait_task("held.1.0.0", "RUNNING")
    drive_a_shell(exec_on_terminal(c, terminal_of, "held.1.0.0"))
    out = io.BytesIO()
    config = ClientConfig(url=c.url, token=c.token)
    bad = exec_task(
        config, "held.1.0.0", ["sh"], stdin=None, stdout=out, stderr=out, tty=True, size=(0, 30)
    )
    assert (bad.status, bad.exit_code) == (422, None), bad
    assert bad.error is not None and bad.error.startswith("size.Width:"), bad
    (tmp_path / "done").touch()
    assert c.wait_run("held") == "SUCCEEDED"


def test_exec_it_gives_a_shell_on_a_terminal_in_a_container(
    cluster: Cluster, terminal_of: list[Terminal]
) -> None:
    c = cluster
    running_box(c)
    drive_a_shell(exec_on_terminal(c, terminal_of, "box.1.0.0"))
    with c.client() as client:
        client.kill_job("box")
    assert c.wait_run("box") == "KILLED"
