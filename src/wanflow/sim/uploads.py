"""DashScope's temporary storage for local files, as the official SDK's OssUtils uses it.

1. ``GET /api/v1/uploads?action=getPolicy&model=M`` (Bearer key) issues an upload certificate:
   ``{"request_id", "data": {upload_host, upload_dir, policy, signature, oss_access_key_id, ...}}``.
   The SDK reads it through its generic GET, which takes ``data`` (or ``output``) as the payload.
2. ``POST {upload_host}`` (here ``/_sim/oss``) is an OSS form upload: the certificate's fields,
   ``key = upload_dir + "/" + name`` and the file part. HTTP 200 means stored.
3. The object is then ``oss://<key>``, usable as a media input of model M only, by the same
   account, for ``--upload-ttl`` seconds (48 h by default), and only when the create request carries
   ``X-DashScope-OssResourceResolve: enable``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from wanflow._fs import atomic_write_bytes
from wanflow.catalog.loader import load_catalog
from wanflow.sim.core import Core, base_url
from wanflow.sim.envelopes import Rejection, dashscope_error
from wanflow.sim.forms import FormPart, parse_form
from wanflow.sim.state import SimState, UploadedObject, UploadPolicy

POLICY_SECONDS = 300  # a certificate's own validity, as the public page's example shows
MAX_FILE_MB = 100
RESOLVE_HEADER = "x-dashscope-ossresourceresolve"
_FORM_FIELDS = ("OSSAccessKeyId", "Signature", "policy", "key", "x-oss-object-acl", "x-oss-forbid-overwrite",
                "success_action_status", "file")


def _oss_error(status: int, code: str, message: str) -> Response:
    body = f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return Response(body, status_code=status, media_type="application/xml")


def _dashscope_models() -> set[str]:
    """Every DashScope model id: the generation models and their pre-check models (s2v's detect)."""
    models = load_catalog().models.values()
    return ({model.providers["dashscope"].model for model in models if "dashscope" in model.providers}
            | {model.precheck.model for model in models if model.precheck is not None and model.precheck.service == "dashscope"})


class Uploads:
    """The certificate endpoint and the simulated OSS bucket behind it."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.state = core.state

    async def get_policy(self, request: Request) -> Response:
        """``GET /api/v1/uploads?action=getPolicy&model=M``."""
        try:
            key = self.core.gate(request)
            query = request.query_params
            if query.get("action") != "getPolicy":
                raise Rejection(400, "InvalidParameter", "action must be getPolicy")
            model = query.get("model", "")
            if model not in _dashscope_models():
                raise Rejection(400, "InvalidParameter", f"Model not exist: {model or '(none)'}")
        except Rejection as rejection:
            return dashscope_error(rejection.status, rejection.code, rejection.message, rejection.headers)
        expires_at = time.time() + POLICY_SECONDS
        upload_dir = f"dashscope-instant/{hashlib.sha256(key.encode()).hexdigest()[:16]}/" \
                     f"{dt.date.today().isoformat()}/{uuid.uuid4()}"
        conditions = {"expiration": dt.datetime.fromtimestamp(expires_at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                      "conditions": [["content-length-range", 0, MAX_FILE_MB * 1024 * 1024],
                                     ["starts-with", "$key", upload_dir]]}
        policy = base64.b64encode(json.dumps(conditions).encode()).decode()
        signature = base64.b64encode(hmac.new(self.state.oss_secret.encode(), policy.encode(), hashlib.sha1).digest()).decode()
        issued = UploadPolicy(policy, signature, "LTAI-sim-" + uuid.uuid4().hex[:12], upload_dir, model, key, expires_at)
        self.state.policies[policy] = issued
        self.state.stats["upload_policies"] += 1
        return JSONResponse({"request_id": str(uuid.uuid4()), "data": {
            "policy": policy,
            "signature": signature,
            "upload_dir": upload_dir,
            "upload_host": base_url(request) + "/_sim/oss",
            "expire_in_seconds": POLICY_SECONDS,
            "max_file_size_mb": MAX_FILE_MB,
            "capacity_limit_mb": 999999999,
            "oss_access_key_id": issued.access_key_id,
            "x_oss_object_acl": "private",
            "x_oss_forbid_overwrite": "true",
        }})

    async def oss_post(self, request: Request) -> Response:
        """The OSS form upload (``POST /_sim/oss``)."""
        try:
            form = parse_form(request.headers.get("content-type", ""), await request.body())
        except ValueError as error:
            return _oss_error(400, "MalformedPOSTRequest", str(error))
        missing = [name for name in _FORM_FIELDS if name not in form]
        if missing:
            return _oss_error(400, "InvalidArgument", "missing form fields: " + ", ".join(missing))
        text = {name: part.data.decode("utf-8", "replace") for name, part in form.items() if name != "file"}
        issued = self.state.policies.get(text["policy"])
        if issued is None or not hmac.compare_digest(issued.signature, text["Signature"]) \
                or issued.access_key_id != text["OSSAccessKeyId"]:
            return _oss_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match")
        if issued.expires_at < time.time():
            return _oss_error(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        object_key = text["key"]
        if not object_key.startswith(issued.upload_dir + "/") or object_key == issued.upload_dir + "/":
            return _oss_error(403, "AccessDenied", "Invalid according to Policy: Policy Condition failed: "
                                                   "[\"starts-with\", \"$key\", \"" + issued.upload_dir + "\"]")
        data = form["file"].data
        if len(data) > MAX_FILE_MB * 1024 * 1024:
            return _oss_error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
        if text["x-oss-forbid-overwrite"] == "true" and object_key in self.state.objects:
            return _oss_error(409, "FileAlreadyExists", "The object you specified already exists and can not be overwritten.")
        self._store(issued, object_key, form["file"], text.get("x-oss-content-type"))
        status = 200 if text["success_action_status"] not in ("201", "204") else int(text["success_action_status"])
        return Response(status_code=status)

    def _store(self, issued: UploadPolicy, object_key: str, file: FormPart, content_type: str | None) -> None:
        path = self.state.workdir / "oss" / hashlib.sha256(object_key.encode()).hexdigest()
        atomic_write_bytes(path, file.data, durable=False)
        self.state.objects[object_key] = UploadedObject(
            object_key, path, issued.model, issued.api_key, content_type or file.content_type or "application/octet-stream",
            time.time() + self.state.knobs.upload_ttl)
        self.state.stats["uploads"] += 1


def resolve_oss(state: SimState, name: str, provider_model: str, api_key: str, resolve: bool) -> Path:
    """The stored file behind ``oss://<key>``, or Rejection as the service answers a bad URL."""
    url_error = "url error, please check url!"
    if not resolve:
        # Without the opt-in header the service does not resolve oss:// names at all.
        raise Rejection(400, "InvalidParameter", f"{url_error} (oss:// needs X-DashScope-OssResourceResolve: enable)")
    stored = state.objects.get(name.removeprefix("oss://"))
    if stored is None or stored.api_key != api_key:
        raise Rejection(400, "InvalidParameter", f"{url_error} (no such uploaded file)")
    if stored.expires_at < time.time():
        raise Rejection(400, "InvalidParameter", f"{url_error} (the uploaded file has expired)")
    if stored.model != provider_model:
        # Files are bound to the model named when the certificate was issued.
        raise Rejection(400, "InvalidParameter", f"{url_error} (the file was uploaded for {stored.model})")
    state.stats["inputs_by_oss"] += 1
    return stored.path
