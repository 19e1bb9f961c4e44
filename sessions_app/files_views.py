"""Session files, attachments and workspace bundles (all through the safe workspace layer)."""

from __future__ import annotations

import base64
import binascii
import contextlib

from asgiref.sync import async_to_sync
from django.core.files.base import ContentFile
from django.http import FileResponse, HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ash.api import query_bool, query_choice, tenant_id_of, validated
from ash.content_types import attachment_disposition, content_type_for
from ash.errors import BadRequest, PayloadTooLarge, parse_uuid
from ash.sandbox.workspace_fs import (
    ATTACHMENT_LIMIT,
    JSON_READ_LIMIT,
    RAW_READ_LIMIT,
    safe_filename,
)
from ash.schema import ERRORS, envelope_of
from sessions_app.models import Attachment, Session
from sessions_app.runner_client import runner_call
from sessions_app.selectors import attachment_get, attachment_list, session_get
from sessions_app.serializers import (
    AttachmentCreateSerializer,
    AttachmentSerializer,
    FilesWriteSerializer,
    WorkspaceUploadSerializer,
)
from sessions_app.workspace import snapshot_fs, workspace_source


class FileEntrySerializer(serializers.Serializer):
    path = serializers.CharField()
    size = serializers.IntegerField()
    modifiedAt = serializers.DateTimeField()


def _session(request: Request, session_id: str) -> Session:
    return session_get(tenant_id=tenant_id_of(request), session_id=parse_uuid(session_id))


def _require_live(session: Session) -> None:
    if workspace_source(session) != "sandbox":
        raise BadRequest(f"Session is {session.status}: its sandbox is not running (resume it first)")


def _decode_b64(value: str, field: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{field}: not valid base64") from None


class SessionFilesView(APIView):
    @extend_schema(
        operation_id="listSessionFiles",
        parameters=[OpenApiParameter("includeHidden", str, enum=["true", "false"], required=False)],
        responses={200: envelope_of("SessionFileList", files=FileEntrySerializer(many=True), source=serializers.CharField()), **ERRORS(400, 404)},
    )
    def get(self, request: Request, session_id: str) -> Response:
        session = _session(request, session_id)
        include_hidden = query_bool(request, "includeHidden", default=True)
        source = workspace_source(session)
        if source == "sandbox":
            files = runner_call(session, "files_list", include_hidden=include_hidden)
        else:
            entries = async_to_sync(snapshot_fs(session).list)(include_hidden=include_hidden)
            files = [e.to_dict() for e in entries if e.type == "file"]
        return Response({"files": [{k: f[k] for k in ("path", "size", "modifiedAt")} for f in files], "source": source})

    @extend_schema(operation_id="writeSessionFiles", request=FilesWriteSerializer,
                   responses={200: envelope_of("FileWriteResults", files=serializers.ListField()), **ERRORS(400, 404, 413)})
    def post(self, request: Request, session_id: str) -> Response:
        session = _session(request, session_id)
        data = validated(FilesWriteSerializer, request.data)
        _require_live(session)
        files = [{"path": f["path"], "content": f["content"]} for f in data["files"]]
        results = runner_call(session, "files_write", timeout=300, files=files, target=data["targetPath"])
        return Response({"files": results})


class SessionFileView(APIView):
    @extend_schema(
        operation_id="readSessionFile",
        parameters=[OpenApiParameter("format", str, enum=["json", "raw"], required=False)],
        responses={200: OpenApiResponse(description="raw bytes, or {path, content, size, source}"), **ERRORS(400, 404, 413)},
    )
    def get(self, request: Request, session_id: str, path: str) -> Response | HttpResponse:
        session = _session(request, session_id)
        fmt = query_choice(request, "format", ("json", "raw")) or "raw"
        limit = JSON_READ_LIMIT if fmt == "json" else RAW_READ_LIMIT
        source = workspace_source(session)
        if source == "sandbox":
            read = runner_call(session, "file_read", timeout=120, path=path, max_bytes=limit)
            content = base64.b64decode(read["content_b64"])
            rel, size = read["path"], read["size"]
        else:
            data = async_to_sync(snapshot_fs(session).read)(path, max_bytes=limit)
            content, rel, size = data.data, data.entry.path, data.entry.size
        if fmt == "json":
            try:
                text = content.decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest("File is not UTF-8 text; use format=raw") from None
            return Response({"path": rel, "content": text, "size": size, "source": source})
        response = HttpResponse(content, content_type=content_type_for(rel))
        response["Content-Disposition"] = attachment_disposition(rel.rsplit("/", 1)[-1])
        response["X-Content-Type-Options"] = "nosniff"
        response["X-Ash-Source"] = source
        return response

    @extend_schema(operation_id="deleteSessionFile", responses={200: envelope_of("FileDeleted", path=serializers.CharField(), deleted=serializers.BooleanField()), **ERRORS(400, 404)})
    def delete(self, request: Request, session_id: str, path: str) -> Response:
        session = _session(request, session_id)
        _require_live(session)
        runner_call(session, "file_delete", path=path)
        return Response({"path": path, "deleted": True})


class SessionAttachmentsView(APIView):
    @extend_schema(operation_id="listAttachments", responses={200: envelope_of("AttachmentList", attachments=AttachmentSerializer(many=True)), **ERRORS(400, 404)})
    def get(self, request: Request, session_id: str) -> Response:
        session = _session(request, session_id)
        return Response({"attachments": AttachmentSerializer(attachment_list(session=session), many=True).data})

    @extend_schema(operation_id="uploadAttachment", request=AttachmentCreateSerializer,
                   responses={201: envelope_of("AttachmentEnvelope", attachment=AttachmentSerializer()), **ERRORS(400, 404, 413)})
    def post(self, request: Request, session_id: str) -> Response:
        session = _session(request, session_id)
        data = validated(AttachmentCreateSerializer, request.data)
        if len(data["content"]) > (ATTACHMENT_LIMIT * 4) // 3 + 4:
            raise PayloadTooLarge(f"Attachment too large (max {ATTACHMENT_LIMIT} bytes)")
        content = _decode_b64(data["content"], "content")
        if not content:
            raise BadRequest("content: must not be empty")
        if len(content) > ATTACHMENT_LIMIT:
            raise PayloadTooLarge(f"Attachment too large ({len(content)} bytes, max {ATTACHMENT_LIMIT})")
        filename = safe_filename(data["filename"])
        attachment = Attachment(
            tenant_id=session.tenant_id, session=session, filename=filename, mime_type=data["mimeType"],
            size=len(content), message_id=str(data["messageId"]) if data.get("messageId") else "unlinked",
        )
        attachment.file.save(filename, ContentFile(content), save=True)
        if session.status in (Session.Status.ACTIVE, Session.Status.PAUSED) and session.runner_id:
            with contextlib.suppress(BadRequest):  # no live sandbox: the stored copy is the one that counts
                runner_call(session, "copy_in", timeout=60, filename=filename, content_b64=data["content"])
        return Response({"attachment": AttachmentSerializer(attachment).data}, status=status.HTTP_201_CREATED)


class AttachmentDetailView(APIView):
    @extend_schema(operation_id="downloadAttachment", responses={200: OpenApiResponse(description="raw bytes"), **ERRORS(400, 404)})
    def get(self, request: Request, attachment_id: str) -> FileResponse:
        attachment = attachment_get(tenant_id=tenant_id_of(request), attachment_id=parse_uuid(attachment_id))
        response = FileResponse(attachment.file.open("rb"), content_type=attachment.mime_type)
        response["Content-Disposition"] = attachment_disposition(attachment.filename)
        response["X-Content-Type-Options"] = "nosniff"
        return response

    @extend_schema(operation_id="deleteAttachment", responses={204: OpenApiResponse(description="Deleted"), **ERRORS(400, 404)})
    def delete(self, request: Request, attachment_id: str) -> Response:
        attachment = attachment_get(tenant_id=tenant_id_of(request), attachment_id=parse_uuid(attachment_id))
        attachment.file.delete(save=False)
        attachment.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionWorkspaceView(APIView):
    @extend_schema(operation_id="downloadWorkspace", responses={200: OpenApiResponse(description="application/gzip tar"), **ERRORS(400, 404, 413)})
    def get(self, request: Request, session_id: str) -> HttpResponse:
        session = _session(request, session_id)
        if workspace_source(session) == "sandbox":
            data = base64.b64decode(runner_call(session, "bundle", timeout=240))
        else:
            fs = snapshot_fs(session)

            async def make() -> bytes:
                with await fs.bundle() as bundle:
                    return bundle.read_all()

            data = async_to_sync(make)()
        response = HttpResponse(data, content_type="application/gzip")
        response["Content-Disposition"] = attachment_disposition(f"{session.pk}.tar.gz")
        return response

    @extend_schema(operation_id="uploadWorkspace", request=WorkspaceUploadSerializer,
                   responses={200: envelope_of("WorkspaceRestored", message=serializers.CharField()), **ERRORS(400, 404, 413)})
    def post(self, request: Request, session_id: str) -> Response:
        session = _session(request, session_id)
        data = validated(WorkspaceUploadSerializer, request.data)
        bundle = _decode_b64(data["bundle"], "bundle")
        if not bundle:
            raise BadRequest("Empty bundle")
        if bundle[:2] != b"\x1f\x8b":
            raise BadRequest("Invalid bundle: not a gzip file")
        _require_live(session)
        runner_call(session, "extract_bundle", timeout=300, bundle_b64=data["bundle"])
        return Response({"message": "Workspace restored to live sandbox"})
