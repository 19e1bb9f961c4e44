"""The Django admin: login required, every registered model's changelist and change page render."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from agents_app.models import Agent
from ash.auth import api_key_create
from ash.core.models import Runner
from credentials_app.services import credential_create
from queue_app.models import QueueItem
from sessions_app.models import Attachment, Session
from sessions_app.services import session_event_record, session_message_record
from usage_app.models import UsageEvent

SECRET = "sk-admin-never-shows-this"


@pytest.fixture
def staff(client, db):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def one_of_each(db, deploy, settings, tmp_path) -> dict:
    settings.MEDIA_ROOT = tmp_path / "media"
    agent = Agent.objects.get(pk=deploy("helper")["id"])
    runner = Runner.objects.create(runner_id="r1", host="127.0.0.1", port=1, last_heartbeat_at=timezone.now())
    session = Session.objects.create(tenant_id=agent.tenant_id, agent=agent, agent_name="helper", status="active", runner=runner)
    session_message_record(session=session, role="user", content={"type": "user", "content": "hi"})
    session_event_record(session=session, type="text", data={"text": "hello"})
    attachment = Attachment(tenant_id=agent.tenant_id, session=session, filename="a.txt", mime_type="text/plain", size=2)
    attachment.file.save("a.txt", ContentFile(b"hi"), save=True)
    api_key_create(tenant_id=agent.tenant_id, label="admin-test")
    credential_create(tenant_id=agent.tenant_id, type="anthropic", key=SECRET, label="k")
    QueueItem.objects.create(tenant_id=agent.tenant_id, agent_name="helper", prompt="x")
    UsageEvent.objects.create(tenant_id=agent.tenant_id, session_id=session.id, agent_name="helper", event_type="message", value=1)
    return {"agent": agent, "session": session}


def test_admin_index_redirects_anonymous_users_to_login(client, db):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/"


def test_admin_index_renders_for_superuser(staff):
    assert staff.get("/admin/").status_code == 200


def test_every_registered_model_is_ours_and_listed():
    labels = {model._meta.label for model in admin.site._registry}
    expected = {
        "core.ApiKey", "core.Runner", "agents_app.Agent", "sessions_app.Session", "sessions_app.Message",
        "sessions_app.SessionEvent", "sessions_app.Attachment", "credentials_app.Credential",
        "queue_app.QueueItem", "usage_app.UsageEvent",
    }
    assert expected <= labels


def test_every_changelist_and_change_page_renders(staff, one_of_each):
    for model in admin.site._registry:
        opts = model._meta
        changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        response = staff.get(changelist)
        assert response.status_code == 200, changelist
        row = model.objects.first()
        if row is not None:
            change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[row.pk])
            assert staff.get(change).status_code == 200, change


def test_admin_pages_never_show_secrets(staff, one_of_each):
    from ash.core.models import ApiKey
    from credentials_app.models import Credential

    credential = Credential.objects.get()
    key = ApiKey.objects.get(label="admin-test")
    pages = [
        reverse("admin:credentials_app_credential_changelist"),
        reverse("admin:credentials_app_credential_change", args=[credential.pk]),
        reverse("admin:core_apikey_changelist"),
        reverse("admin:core_apikey_change", args=[key.pk]),
    ]
    for page in pages:
        html = staff.get(page).content.decode()
        assert SECRET not in html, page
        assert credential.encrypted_key not in html, page
        assert key.key_hash not in html, page
