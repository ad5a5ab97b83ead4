"""nginx for the benchmark: model stand-ins answering a fixed JSON body, and nginx as the proxy.

Each instance is its own master (one worker) with its own prefix directory, so
nothing under /etc/nginx is read or written.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from procs import LocalServer, Service, http_status, tool_path, wait_for

__all__ = ["ECHO_MODULE", "NginxInstance", "nginx_version", "render_backend", "render_proxy"]

ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")

_COMMON = """\
worker_processes 1;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
{modules}
events {{ worker_connections 8192; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    client_body_buffer_size 64k;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
{body}
}}
"""

_BACKEND = """\
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type {content_type};
            {handler}
        }}
    }}"""

_PROXY = """\
    upstream models {{
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://models;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"""


def render_backend(
    prefix: Path, port: int, payload: str, delay: float = 0.0,
    content_type: str = "application/json",
) -> str:
    """nginx.conf of a model stand-in: every request gets 200 and ``payload`` (JSON by default).

    With ``delay`` > 0 the answer waits that long (echo module's non-blocking sleep).
    """
    if "'" in payload:
        raise ValueError("payload must not contain a single quote")
    if delay > 0:
        modules = f"load_module {ECHO_MODULE};"
        handler = f"echo_sleep {delay:.3f}; echo '{payload}';"
    else:
        modules, handler = "", f"return 200 '{payload}';"
    body = _BACKEND.format(port=port, handler=handler, content_type=content_type)
    return _COMMON.format(prefix=prefix, modules=modules, body=body)


def render_proxy(prefix: Path, port: int, upstreams: Mapping[int, int]) -> str:
    """nginx.conf of nginx as the proxy: ``upstreams`` maps backend port to weight."""
    servers = "\n".join(
        f"        server 127.0.0.1:{backend_port} weight={weight};"
        for backend_port, weight in upstreams.items()
    )
    body = _PROXY.format(port=port, servers=servers)
    return _COMMON.format(prefix=prefix, modules="", body=body)


def nginx_version() -> str:
    """``nginx -v`` output, e.g. ``nginx/1.22.1``."""
    exe = tool_path("nginx") or "nginx"
    out = subprocess.run([exe, "-v"], capture_output=True, text=True, check=False)
    return (out.stderr or out.stdout).strip().removeprefix("nginx version: ")


class NginxInstance(LocalServer):
    """An nginx master in the foreground with its own prefix directory and a free port."""

    def start(self, conf: str) -> NginxInstance:
        """Write ``conf``, start nginx on it, and wait until it answers HTTP."""
        conf_path = self.prefix / "nginx.conf"
        conf_path.write_text(conf)
        exe = tool_path("nginx") or "nginx"
        cmd = [exe, "-p", str(self.prefix), "-c", str(conf_path), "-g", "daemon off;"]
        self.service = Service(self.name, cmd, self.prefix / "stdout.log").start()
        service = self.service
        wait_for(self.name, lambda: service.check_alive() and http_status(self.url) is not None)
        return self
