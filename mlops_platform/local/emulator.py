"""An embedded AWS: moto's server in a thread of this process, for one account and region.

The CDK CLI and every boto3 client of this process reach it through ``AWS_ENDPOINT_URL``, with fake
credentials; moto takes the account from ``MOTO_ACCOUNT_ID``. Each :class:`Emulator` starts from
empty state (moto's backends are reset on start and on stop), so two runs in a row never share
anything. The compatibility layer (:mod:`.deviations`) is installed while it runs and removed after.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType

from mlops_platform.local import deviations

# Fake credentials: moto accepts any; they only have to look like credentials to the SDKs.
ACCESS_KEY_ID = "AKIALOCALPLATFORM000"
SECRET_ACCESS_KEY = "local-platform-secret"  # noqa: S105 - not a secret: moto accepts any key


@dataclass
class Emulator:
    """moto's server on ``127.0.0.1:<free port>``; use as a context manager."""

    account: str
    region: str
    _server: object | None = field(default=None, init=False, repr=False)
    _saved_environment: dict[str, str | None] = field(default_factory=dict, init=False, repr=False)
    endpoint: str = field(default="", init=False)

    def environment(self) -> dict[str, str]:
        """What a process (the CDK CLI) or this one needs to talk to the emulator and nothing else."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "MOTO_ACCOUNT_ID": self.account,
            # No shared config or profile, no instance metadata: nothing can point at a real account.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def __enter__(self) -> Emulator:
        from moto.moto_api import _internal
        from moto.server import ThreadedMotoServer

        _internal.moto_api_backend.reset()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        deviations.install()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        self._server = server
        self.endpoint = f"http://{host}:{port}"
        self._set_environment(self.environment())
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        from moto.moto_api import _internal

        try:
            if self._server is not None:
                self._server.stop()  # type: ignore[attr-defined]  # shuts the server down and joins its thread
        finally:
            self._server = None
            self._restore_environment()
            deviations.uninstall()
            _internal.moto_api_backend.reset()

    def _set_environment(self, values: Mapping[str, str]) -> None:
        # MOTO_PORT: where moto's own callbacks (and ours) address the server.
        values = {**values, "MOTO_PORT": self.endpoint.rsplit(":", 1)[1]}
        for name, value in values.items():
            self._saved_environment.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
            self._saved_environment.setdefault(name, os.environ.pop(name, None))

    def _restore_environment(self) -> None:
        for name, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environment.clear()


@contextlib.contextmanager
def running(account: str, region: str) -> Iterator[Emulator]:
    with Emulator(account=account, region=region) as emulator:
        yield emulator
