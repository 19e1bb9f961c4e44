from django.urls import path, re_path

from agents_app import views

urlpatterns = [
    path("agents", views.AgentListCreateView.as_view()),
    path("agents/<str:name>", views.AgentDetailView.as_view()),
    path("agents/<str:name>/files", views.AgentFileListView.as_view()),
    re_path(r"^agents/(?P<name>[^/]+)/files/(?P<path>.+)$", views.AgentFileReadView.as_view()),
]
