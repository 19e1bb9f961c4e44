from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from credentials_app import crypto
from credentials_app.models import Credential
from credentials_app.services import credential_validate_key


class CredentialForm(forms.ModelForm):
    """Takes a key and stores it encrypted; the stored key is never shown back."""

    key = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Write-only. Leave empty to keep the current key.",
    )

    class Meta:
        model = Credential
        fields = ["tenant_id", "type", "label", "active"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        key = data.get("key") or ""
        if not self.instance.pk and not key:
            self.add_error("key", "A key is required.")
        if key:
            from ash.errors import ApiError

            try:
                credential_validate_key(type=data.get("type", ""), key=key)
            except ApiError as exc:
                self.add_error("key", exc.message)
        return data

    def save(self, commit: bool = True) -> Credential:
        credential = super().save(commit=False)
        if key := self.cleaned_data.get("key"):
            credential.encrypted_key = crypto.encrypt(key)
        if commit:
            credential.save()
        return credential


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    form = CredentialForm
    list_display = ["label", "type", "tenant_id", "active", "created_at", "last_used_at"]
    list_filter = ["type", "active", "tenant_id"]
    search_fields = ["label", "tenant_id", "id"]
    readonly_fields = ["id", "created_at", "last_used_at"]
