from django.urls import path

from credentials_app import views

urlpatterns = [
    path("credentials", views.CredentialListCreateView.as_view()),
    path("credentials/<str:credential_id>", views.CredentialDetailView.as_view()),
]
