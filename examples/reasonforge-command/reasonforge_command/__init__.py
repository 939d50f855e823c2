"""A sampler engine that asks a local command for each answer: the command gets one JSON
object on stdin ({"messages", "temperature", "top_p", "max_new_tokens", "seed"}) and prints
the answer; rf-sample renders the prompts and writes the candidates."""

import json
import shlex
import subprocess

from rf_core.api import Option, RFError, SampleRequest, hookimpl, sample_seed


class CommandSampler:
    """A sampler engine whose answers come from a local command."""

    name = "command"
    description = "asks a local command (-o command CMD) for each answer"
    options = (Option("command", str, None, "The command to run, e.g. 'python answer.py'."),
               Option("timeout", float, 60.0, "Seconds one answer may take.", minimum=0.001))

    def load(self, request: SampleRequest, *, command=None, timeout=60.0, **_ignored):
        """Check the command; this engine loads no model."""
        if not command:
            raise RFError("the command sampler needs -o command CMD")
        self.request, self.argv, self.timeout = request, shlex.split(command), timeout
        return self

    def _answer(self, messages: list[dict], seed: int) -> dict:
        r = self.request
        query = {"messages": messages, "temperature": r.temperature, "top_p": r.top_p,
                 "max_new_tokens": r.max_new_tokens, "seed": seed}
        done = subprocess.run(self.argv, input=json.dumps(query), capture_output=True,
                              text=True, timeout=self.timeout)
        if done.returncode != 0:
            raise RFError(f"{self.argv[0]} exited {done.returncode}: {done.stderr.strip()}")
        return {"text": done.stdout.strip(), "logprob": None, "n_tokens": None,
                "finished": True, "seed": seed}

    def generate(self, conversations: list[list[dict]], *, first: int, **_context):
        """k answers per conversation, each from one run of the command with its own seed."""
        seed = self.request.seed
        return [[self._answer(messages, sample_seed(seed, first + i, j))
                 for j in range(self.request.k)] for i, messages in enumerate(conversations)]


@hookimpl
def register_samplers(register):
    """command."""
    register(CommandSampler())
