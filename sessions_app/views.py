from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ash.api import query_choice, query_int, tenant_id_of, validated
from ash.errors import BadRequest, parse_uuid
from ash.schema import ERRORS, envelope_of
from sessions_app import lifecycle
from sessions_app.models import Session, SessionEvent
from sessions_app.runner_client import runner_call
from sessions_app.selectors import event_list, message_list, session_get, session_list
from sessions_app.serializers import (
    ExecSerializer,
    MessageSerializer,
    SessionConfigSerializer,
    SessionCreateSerializer,
    SessionEventSerializer,
    SessionSerializer,
)

SESSION_ENVELOPE = envelope_of("SessionEnvelope", session=SessionSerializer())


def _session(request: Request, session_id: str) -> Session:
    return session_get(tenant_id=tenant_id_of(request), session_id=parse_uuid(session_id))


def _session_response(session: Session, code: int = status.HTTP_200_OK) -> Response:
    return Response({"session": SessionSerializer(session).data}, status=code)


class SessionListCreateView(APIView):
    @extend_schema(
        operation_id="listSessions",
        parameters=[
            OpenApiParameter("agent", str, required=False),
            OpenApiParameter("status", str, enum=Session.Status.values, required=False),
            OpenApiParameter("limit", int, required=False, description="1..1000, default 100"),
        ],
        responses={200: envelope_of("SessionList", sessions=SessionSerializer(many=True)), **ERRORS(400)},
    )
    def get(self, request: Request) -> Response:
        sessions = session_list(
            tenant_id=tenant_id_of(request),
            agent_name=request.query_params.get("agent") or None,
            status=query_choice(request, "status", Session.Status.values),
            limit=query_int(request, "limit", default=100, minimum=1, maximum=1000),
        )
        return Response({"sessions": SessionSerializer(sessions, many=True).data})

    @extend_schema(operation_id="createSession", request=SessionCreateSerializer,
                   responses={201: SESSION_ENVELOPE, **ERRORS(400, 404, 500, 503)})
    def post(self, request: Request) -> Response:
        data = validated(SessionCreateSerializer, request.data)
        agent = data.pop("agent")
        session = lifecycle.session_create(tenant_id=tenant_id_of(request), agent_name=agent, options=data)
        return _session_response(session, status.HTTP_201_CREATED)


class SessionDetailView(APIView):
    @extend_schema(operation_id="getSession", responses={200: SESSION_ENVELOPE, **ERRORS(400, 404)})
    def get(self, request: Request, session_id: str) -> Response:
        return _session_response(_session(request, session_id))

    @extend_schema(operation_id="endSession", responses={200: SESSION_ENVELOPE, **ERRORS(400, 404)})
    def delete(self, request: Request, session_id: str) -> Response:
        return _session_response(lifecycle.session_end(session=_session(request, session_id)))


class SessionConfigView(APIView):
    @extend_schema(operation_id="updateSessionConfig", request=SessionConfigSerializer,
                   responses={200: SESSION_ENVELOPE, **ERRORS(400, 404)})
    def patch(self, request: Request, session_id: str) -> Response:
        session = _session(request, session_id)
        changes = validated(SessionConfigSerializer, request.data)
        return _session_response(lifecycle.session_config_update(session=session, changes=changes))


class SessionPauseView(APIView):
    @extend_schema(operation_id="pauseSession", request=None, responses={200: SESSION_ENVELOPE, **ERRORS(400, 404)})
    def post(self, request: Request, session_id: str) -> Response:
        return _session_response(lifecycle.session_pause(session=_session(request, session_id)))


class SessionStopView(APIView):
    @extend_schema(operation_id="stopSession", request=None, responses={200: SESSION_ENVELOPE, **ERRORS(400, 404)})
    def post(self, request: Request, session_id: str) -> Response:
        return _session_response(lifecycle.session_stop(session=_session(request, session_id)))


class SessionResumeView(APIView):
    @extend_schema(operation_id="resumeSession", request=None, responses={200: SESSION_ENVELOPE, **ERRORS(400, 404, 410, 500, 503)})
    def post(self, request: Request, session_id: str) -> Response:
        return _session_response(lifecycle.session_resume(session=_session(request, session_id)))


class SessionForkView(APIView):
    @extend_schema(operation_id="forkSession", request=None, responses={201: SESSION_ENVELOPE, **ERRORS(400, 404, 500, 503)})
    def post(self, request: Request, session_id: str) -> Response:
        child = lifecycle.session_fork(session=_session(request, session_id))
        return _session_response(child, status.HTTP_201_CREATED)


class SessionMessagesView(APIView):
    """GET lists the history; POST (the streamed turn) is the async view in sessions_app.streaming."""

    @extend_schema(
        operation_id="listMessages",
        parameters=[OpenApiParameter("limit", int, required=False), OpenApiParameter("after", int, required=False)],
        responses={200: envelope_of("MessageList", messages=MessageSerializer(many=True)), **ERRORS(400, 404)},
    )
    def get(self, request: Request, session_id: str) -> Response:
        session = _session(request, session_id)
        messages = message_list(
            session=session,
            after=query_int(request, "after", default=0, minimum=0, maximum=2**62),
            limit=query_int(request, "limit", default=100, minimum=1, maximum=1000),
        )
        return Response({"messages": MessageSerializer(messages, many=True).data})


class SessionEventsView(APIView):
    @extend_schema(
        operation_id="listSessionEvents",
        parameters=[
            OpenApiParameter("limit", int, required=False),
            OpenApiParameter("after", int, required=False),
            OpenApiParameter("type", str, enum=SessionEvent.Type.values, required=False),
        ],
        responses={200: envelope_of("SessionEventList", events=SessionEventSerializer(many=True)), **ERRORS(400, 404)},
    )
    def get(self, request: Request, session_id: str) -> Response:
        session = _session(request, session_id)
        events = event_list(
            session=session,
            after=query_int(request, "after", default=0, minimum=0, maximum=2**62),
            limit=query_int(request, "limit", default=200, minimum=1, maximum=1000),
            type=query_choice(request, "type", SessionEvent.Type.values),
        )
        return Response({"events": SessionEventSerializer(events, many=True).data})


class SessionExecView(APIView):
    @extend_schema(
        operation_id="execInSession",
        request=ExecSerializer,
        responses={200: envelope_of("ExecResult", exitCode=serializers.IntegerField(), stdout=serializers.CharField(),
                                    stderr=serializers.CharField()), **ERRORS(400, 404, 500)},
    )
    def post(self, request: Request, session_id: str) -> Response:
        session = _session(request, session_id)
        data = validated(ExecSerializer, request.data)
        if session.status != Session.Status.ACTIVE:
            raise BadRequest(f"Session is {session.status}")
        result = runner_call(session, "exec", timeout=data["timeout"] / 1000 + 60, command=data["command"], timeout_ms=data["timeout"])
        return Response(result)


class SessionLogsView(APIView):
    @extend_schema(
        operation_id="sessionLogs",
        parameters=[OpenApiParameter("after", int, required=False, description=">= -1, default -1")],
        responses={200: envelope_of("LogList", logs=serializers.ListField(), source=serializers.CharField()), **ERRORS(400, 404)},
    )
    def get(self, request: Request, session_id: str) -> Response:
        session = _session(request, session_id)
        after = query_int(request, "after", default=-1, minimum=-1, maximum=2**62)
        logs: list = []
        if session.runner_id and session.status in (Session.Status.ACTIVE, Session.Status.PAUSED):
            logs = runner_call(session, "logs", timeout=15, after=after)
        return Response({"logs": logs, "source": "sandbox"})
