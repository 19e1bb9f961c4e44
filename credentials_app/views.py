from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ash.api import tenant_id_of, validated
from ash.errors import parse_uuid
from ash.schema import ERRORS, envelope_of
from credentials_app.selectors import credential_list
from credentials_app.serializers import CredentialCreateSerializer, CredentialSerializer
from credentials_app.services import credential_create, credential_delete


class CredentialListCreateView(APIView):
    @extend_schema(operation_id="listCredentials", responses={200: envelope_of("CredentialList", credentials=CredentialSerializer(many=True))})
    def get(self, request: Request) -> Response:
        rows = credential_list(tenant_id=tenant_id_of(request))
        return Response({"credentials": CredentialSerializer(rows, many=True).data})

    @extend_schema(
        operation_id="createCredential",
        request=CredentialCreateSerializer,
        responses={201: envelope_of("CredentialEnvelope", credential=CredentialSerializer()), **ERRORS(400)},
    )
    def post(self, request: Request) -> Response:
        data = validated(CredentialCreateSerializer, request.data)
        credential = credential_create(
            tenant_id=tenant_id_of(request), type=data["type"], key=data["key"], label=data.get("label", "")
        )
        return Response({"credential": CredentialSerializer(credential).data}, status=status.HTTP_201_CREATED)


class CredentialDetailView(APIView):
    @extend_schema(operation_id="deleteCredential", responses={204: OpenApiResponse(description="Deleted"), **ERRORS(400, 404)})
    def delete(self, request: Request, credential_id: str) -> Response:
        credential_delete(tenant_id=tenant_id_of(request), credential_id=parse_uuid(credential_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
