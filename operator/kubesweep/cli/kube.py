"""A small synchronous Kubernetes client for the CLI, configured like kubectl.

The CLI makes a handful of blocking calls per command, so a few standard-library
HTTPS requests serve it better than an async client and its dependencies. The
kubeconfig is found as kubectl finds it (``--kubeconfig``, else ``$KUBECONFIG``,
whose first existing file is used, else ``~/.kube/config``); ``--context``
picks the context and the namespace defaults to the context's. Client
certificates, bearer tokens (also from a file) and exec credential plugins are
supported; in-cluster service-account credentials are used when no kubeconfig
exists.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import http.client
import json
import os
import ssl
import subprocess
import tempfile
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubesweep.api import API_VERSION

JSON = dict[str, Any]
_SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeError(Exception):
    """The API answered with an error, or could not be reached (``status`` ``None``)."""

    def __init__(
        self, message: str, status: int | None = None, body: JSON | str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        #: The answer's Status object (or text), when there was an answer.
        self.body = body


class ConfigError(KubeError):
    """No usable kubeconfig."""


@dataclass
class KubeConfig:
    """The parts of one kubeconfig context this client needs."""

    server: str
    namespace: str = "default"
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    #: Where the token is read from at every request (a kubeconfig's ``tokenFile``, or the
    #: service account's projected token, which the kubelet rotates): never cached.
    token_file: str | None = None
    insecure: bool = False
    exec_spec: Mapping[str, Any] | None = None
    _temp: list[str] = field(default_factory=list, repr=False)

    def ssl_context(self) -> ssl.SSLContext:
        """TLS settings for the server."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file and self.key_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


#: Objects asked for per page of a list.
LIST_PAGE = 500


def kubeconfig_path(explicit: str | None = None) -> Path | None:
    """The kubeconfig file kubectl would read."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("KUBECONFIG")
    if env:
        for part in env.split(os.pathsep):
            if part and Path(part).expanduser().exists():
                return Path(part).expanduser()
    default = Path.home() / ".kube" / "config"
    return default if default.exists() else None


def _file_or_data(entry: Mapping[str, Any], key: str, base: Path, config: KubeConfig) -> str | None:
    if entry.get(key):
        path = Path(str(entry[key])).expanduser()
        return str(path if path.is_absolute() else base / path)
    data = entry.get(f"{key}-data")
    if not data:
        return None
    handle, name = tempfile.mkstemp(prefix="kubesweep-kubeconfig-")
    with os.fdopen(handle, "wb") as out:
        out.write(base64.b64decode(data))
    config._temp.append(name)
    atexit.register(_remove, name)
    return name


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _named(items: Any, name: str, kind: str, path: Path) -> Mapping[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            return dict(item.get(kind) or {})
    raise ConfigError(f"{path}: no {kind} named {name!r}")


def load_config(
    kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None
) -> KubeConfig:
    """The configuration of ``context`` (default: the current one) of the kubeconfig."""
    path = kubeconfig_path(kubeconfig)
    if path is None:
        if (_SERVICE_ACCOUNT / "token").exists():
            return _in_cluster(namespace)
        raise ConfigError(
            "no kubeconfig: pass --kubeconfig, set KUBECONFIG, or create ~/.kube/config"
        )
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read kubeconfig {path}: {error}") from None
    name = context or document.get("current-context")
    if not name:
        raise ConfigError(f"{path} has no current-context; pass --context")
    ctx = _named(document.get("contexts"), name, "context", path)
    cluster = _named(document.get("clusters"), str(ctx.get("cluster")), "cluster", path)
    user: Mapping[str, Any] = {}
    if ctx.get("user"):
        user = _named(document.get("users"), str(ctx["user"]), "user", path)
    config = KubeConfig(
        server=str(cluster.get("server", "")).rstrip("/"),
        namespace=namespace or str(ctx.get("namespace") or "default"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )
    base = path.parent
    config.ca_file = _file_or_data(cluster, "certificate-authority", base, config)
    config.cert_file = _file_or_data(user, "client-certificate", base, config)
    config.key_file = _file_or_data(user, "client-key", base, config)
    config.token = user.get("token")
    if user.get("tokenFile"):
        config.token_file = str(Path(str(user["tokenFile"])).expanduser())
        config.token = read_token(config.token_file)
    config.exec_spec = user.get("exec")
    return config


def _in_cluster(namespace: str | None) -> KubeConfig:
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "kubernetes.default.svc")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    own = (_SERVICE_ACCOUNT / "namespace").read_text().strip()
    return KubeConfig(
        server=f"https://{host}:{port}",
        namespace=namespace or own,
        ca_file=str(_SERVICE_ACCOUNT / "ca.crt"),
        token=read_token(str(_SERVICE_ACCOUNT / "token")),
        token_file=str(_SERVICE_ACCOUNT / "token"),
    )


def read_token(path: str) -> str:
    """The bearer token in a file, without its trailing newline."""
    try:
        return Path(path).read_text().strip()
    except OSError as error:
        raise ConfigError(f"cannot read the token file {path}: {error}") from None


def exec_token(spec: Mapping[str, Any]) -> str:
    """The bearer token an exec credential plugin prints (client.authentication.k8s.io)."""
    env = dict(os.environ)
    for entry in spec.get("env") or []:
        env[str(entry["name"])] = str(entry["value"])
    command = [str(spec["command"]), *(str(a) for a in spec.get("args") or [])]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=60, check=True
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise ConfigError(f"credential plugin {command[0]} failed: {error}") from None
    status = json.loads(result.stdout).get("status") or {}
    token = status.get("token")
    if not token:
        raise ConfigError(f"credential plugin {command[0]} returned no token")
    return str(token)


def error_body(text: str) -> JSON | str:
    """An error answer's Status object, or its text when it is not JSON."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    return parsed if isinstance(parsed, dict) else text


def path_for(
    api_version: str, plural: str, namespace: str | None = None, name: str | None = None
) -> str:
    """REST path of a collection or object (``v1``: the core group)."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    if name:
        base += f"/{name}"
    return base


class Kube:
    """Blocking JSON calls to the API server."""

    user_agent = "kubesweep-cli"

    def __init__(self, config: KubeConfig, timeout: float = 30.0) -> None:
        self.config = config
        self.namespace = config.namespace
        self.timeout = timeout
        url = urllib.parse.urlsplit(config.server)
        self._https = url.scheme != "http"
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or (443 if self._https else 80)
        self._prefix = url.path.rstrip("/")
        self._ssl = config.ssl_context() if self._https else None
        self._token = config.token

    @classmethod
    def connect(
        cls,
        kubeconfig: str | None = None,
        context: str | None = None,
        namespace: str | None = None,
    ) -> Kube:
        """A client for the kubeconfig, context and namespace, as kubectl would pick them."""
        return cls(load_config(kubeconfig, context, namespace))

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, context=self._ssl, timeout=timeout or self.timeout
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout or self.timeout)

    @property
    def tls(self) -> ssl.SSLContext | None:
        """The TLS settings of the server (``None`` for plain HTTP), for other HTTP clients."""
        return self._ssl

    def headers(self) -> dict[str, str]:
        """The headers of a GET, credentials included, for other HTTP clients (a watch)."""
        return self._headers(None)

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        if content_type:
            headers["Content-Type"] = content_type
        if self.config.token_file is not None:
            # A projected service-account token is replaced by the kubelet before it
            # expires (hourly by default): the file is read again for every request, as
            # the kubelet may have rotated it since the last one.
            self._token = read_token(self.config.token_file)
        elif self._token is None and self.config.exec_spec is not None:
            self._token = exec_token(self.config.exec_spec)
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def credentials_refused(self) -> None:
        """The API server answered 401: a credential plugin's token is asked for again at the
        next request (a token file is read at every request anyway)."""
        if self.config.exec_spec is not None:
            self._token = None

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """The request target of ``path`` with ``params`` (``None`` values left out)."""
        url = self._prefix + path
        if params:
            query = {k: v for k, v in params.items() if v is not None}
            url += "?" + urllib.parse.urlencode(query)
        return url

    def absolute_url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """:meth:`url` with the server's scheme, host and port, for other HTTP clients."""
        scheme = "https" if self._https else "http"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{scheme}://{host}:{self._port}{self.url(path, params)}"

    def exchange(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> tuple[int, str]:
        """One HTTP exchange: the status and the body text, whatever the status.

        A failure to connect raises ``OSError`` or ``http.client.HTTPException``.
        """
        data = None if body is None else json.dumps(body).encode()
        connection = self._connection(timeout)
        try:
            connection.request(
                method,
                self.url(path, params),
                body=data,
                headers=self._headers(content_type if data else None),
            )
            response = connection.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        finally:
            connection.close()

    def raw(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> str:
        """One call returning the body text; raises :class:`KubeError` on errors."""
        try:
            status, text = self.exchange(
                method, path, body, params=params, content_type=content_type, timeout=timeout
            )
        except (OSError, http.client.HTTPException) as error:
            raise KubeError(f"cannot reach the API server {self.config.server}: {error}") from None
        if status >= 300:
            answer = error_body(text)
            message = answer.get("message", text) if isinstance(answer, dict) else text[:500]
            raise KubeError(f"{method} {path}: {status} {message}", status, answer)
        return text

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> JSON:
        """One JSON call."""
        text = self.raw(method, path, body, **kwargs)
        parsed = json.loads(text) if text else {}
        return parsed if isinstance(parsed, dict) else {"items": parsed}

    def get(self, path: str, **params: Any) -> JSON:
        """GET a JSON object."""
        return self.request("GET", path, params=params or None)

    def list_items(self, path: str, **params: Any) -> list[JSON]:
        """GET a list's items, a page at a time (``limit`` and ``continue``).

        One answer holding 100,000 Trials is hundreds of MB that the API server
        builds at once and may give up on; pages keep each answer small.
        """
        items: list[JSON] = []
        token: str | None = None
        while True:
            paging = {"limit": LIST_PAGE, "continue": token}
            page = self.get(path, **params, **paging)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or None
            if token is None:
                return items

    # -- kubesweep resources ---------------------------------------------------

    def experiments(self, namespace: str | None) -> list[JSON]:
        """Experiments in ``namespace`` (``None``: every namespace)."""
        return self.list_items(path_for(API_VERSION, "experiments", namespace))

    def experiment(self, namespace: str, name: str) -> JSON:
        """One Experiment."""
        return self.get(path_for(API_VERSION, "experiments", namespace, name))

    def trials(self, namespace: str, experiment: str) -> list[JSON]:
        """The Trials of an experiment (by the experiment label)."""
        return self.list_items(
            path_for(API_VERSION, "trials", namespace),
            labelSelector=f"kubesweep.io/experiment={experiment}",
        )

    def trial(self, namespace: str, name: str) -> JSON:
        """One Trial."""
        return self.get(path_for(API_VERSION, "trials", namespace, name))

    def pods_of(self, namespace: str, trial: str) -> list[JSON]:
        """The pods of a trial's Job."""
        return self.list_items(
            path_for("v1", "pods", namespace), labelSelector=f"kubesweep.io/trial={trial}"
        )

    def pod_log(self, namespace: str, pod: str, container: str, tail: int | None = None) -> str:
        """A container's log."""
        return self.raw(
            "GET",
            path_for("v1", "pods", namespace, pod) + "/log",
            params={"container": container, "tailLines": tail},
        )

    def watch_lines(self, path: str, **params: Any) -> Iterator[JSON]:
        """Events of a watch, until the server ends it."""
        connection = self._connection(int(params.get("timeoutSeconds", 300)) + 30)
        try:
            connection.request(
                "GET", self.url(path, {**params, "watch": "true"}), headers=self._headers(None)
            )
            response = connection.getresponse()
            if response.status >= 300:
                text = response.read().decode("utf-8", "replace")
                raise KubeError(
                    f"watch {path}: {response.status}", response.status, error_body(text)
                )
            while True:
                line = response.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        finally:
            connection.close()
