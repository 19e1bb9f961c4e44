from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents_app import files as agent_files
from agents_app.selectors import agent_get, agent_list
from agents_app.serializers import AgentDeploySerializer, AgentFileEntrySerializer, AgentSerializer
from agents_app.services import agent_delete, agent_deploy
from ash.api import query_choice, tenant_id_of, validated
from ash.schema import ERRORS, envelope_of

AGENT_ENVELOPE = envelope_of("AgentEnvelope", agent=AgentSerializer())


class AgentListCreateView(APIView):
    @extend_schema(operation_id="listAgents", responses={200: envelope_of("AgentList", agents=AgentSerializer(many=True))})
    def get(self, request: Request) -> Response:
        agents = agent_list(tenant_id=tenant_id_of(request))
        return Response({"agents": AgentSerializer(agents, many=True).data})

    @extend_schema(operation_id="deployAgent", request=AgentDeploySerializer, responses={201: AGENT_ENVELOPE, **ERRORS(400, 413)})
    def post(self, request: Request) -> Response:
        data = validated(AgentDeploySerializer, request.data)
        agent = agent_deploy(
            tenant_id=tenant_id_of(request),
            name=data["name"],
            path=data.get("path"),
            system_prompt=data.get("systemPrompt"),
            files=data.get("files"),
        )
        return Response({"agent": AgentSerializer(agent).data}, status=status.HTTP_201_CREATED)


class AgentDetailView(APIView):
    @extend_schema(operation_id="getAgent", responses={200: AGENT_ENVELOPE, **ERRORS(404)})
    def get(self, request: Request, name: str) -> Response:
        agent = agent_get(tenant_id=tenant_id_of(request), name=name)
        return Response({"agent": AgentSerializer(agent).data})

    @extend_schema(operation_id="deleteAgent", responses={200: envelope_of("Ok", ok=serializers.BooleanField()), **ERRORS(404)})
    def delete(self, request: Request, name: str) -> Response:
        agent_delete(tenant_id=tenant_id_of(request), name=name)
        return Response({"ok": True})


class AgentFileListView(APIView):
    @extend_schema(operation_id="listAgentFiles", responses={200: envelope_of("AgentFileList", files=AgentFileEntrySerializer(many=True)), **ERRORS(404)})
    def get(self, request: Request, name: str) -> Response:
        agent = agent_get(tenant_id=tenant_id_of(request), name=name)
        return Response({"files": agent_files.agent_file_list(agent=agent)})


class AgentFileReadView(APIView):
    @extend_schema(
        operation_id="readAgentFile",
        parameters=[OpenApiParameter("format", str, enum=["json", "raw"], required=False)],
        responses={
            200: inline_serializer("AgentFileContent", {"path": serializers.CharField(), "content": serializers.CharField(), "size": serializers.IntegerField()}),
            **ERRORS(400, 404, 413),
        },
    )
    def get(self, request: Request, name: str, path: str) -> Response | HttpResponse:
        fmt = query_choice(request, "format", ("json", "raw")) or "json"
        agent = agent_get(tenant_id=tenant_id_of(request), name=name)
        if fmt == "raw":
            return agent_files.agent_file_raw_response(agent=agent, path=path)
        return Response(agent_files.agent_file_json(agent=agent, path=path))
