from django.urls import path

from ash.core import views

urlpatterns = [
    path("internal/runners/register", views.RunnerRegisterView.as_view()),
    path("internal/runners/heartbeat", views.RunnerHeartbeatView.as_view()),
    path("internal/runners/deregister", views.RunnerDeregisterView.as_view()),
    path("internal/runners", views.RunnerListView.as_view()),
]
