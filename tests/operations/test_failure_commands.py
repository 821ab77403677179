"""The retry loop of operations/failure.py, run for real by a shell here."""

import subprocess

from operations.failure import retry


def run(command):
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True)


def test_a_command_that_comes_to_succeed_is_retried_until_it_does(tmp_path):
    tries = tmp_path / "tries"
    command = f"echo . >> {tries}; [ $(wc -l < {tries}) -ge 3 ]"
    done = run(retry(command, "never", attempts=5, delay=0, diagnose="echo diagnosed"))
    assert done.returncode == 0 and done.stderr == ""
    assert tries.read_text().count(".") == 3


def test_a_command_that_keeps_failing_fails_with_what_it_waited_for_after_its_diagnosis():
    failed = run(retry("false", "the member did not become healthy", attempts=3, delay=0,
                       diagnose="echo what the container says; echo its last lines"))
    assert failed.returncode == 1
    assert failed.stderr.splitlines() == [
        "what the container says", "its last lines",
        "kubeha: the member did not become healthy (gave up after 0s)"]


def test_without_a_diagnosis_only_the_message_is_printed():
    failed = run(retry("false", "nothing answered", attempts=2, delay=0))
    assert failed.returncode == 1 and failed.stderr == "kubeha: nothing answered (gave up after 0s)\n"
