from django.urls import path, re_path

from sessions_app import files_views, streaming, views

urlpatterns = [
    path("sessions", views.SessionListCreateView.as_view()),
    path("sessions/<str:session_id>", views.SessionDetailView.as_view()),
    path("sessions/<str:session_id>/config", views.SessionConfigView.as_view()),
    path("sessions/<str:session_id>/messages", streaming.session_messages),
    path("sessions/<str:session_id>/stream", streaming.session_stream),
    path("sessions/<str:session_id>/interrupt", streaming.session_interrupt),
    path("sessions/<str:session_id>/events", views.SessionEventsView.as_view()),
    path("sessions/<str:session_id>/logs", views.SessionLogsView.as_view()),
    path("sessions/<str:session_id>/exec", views.SessionExecView.as_view()),
    path("sessions/<str:session_id>/pause", views.SessionPauseView.as_view()),
    path("sessions/<str:session_id>/stop", views.SessionStopView.as_view()),
    path("sessions/<str:session_id>/resume", views.SessionResumeView.as_view()),
    path("sessions/<str:session_id>/fork", views.SessionForkView.as_view()),
    path("sessions/<str:session_id>/files", files_views.SessionFilesView.as_view()),
    re_path(r"^sessions/(?P<session_id>[^/]+)/files/(?P<path>.+)$", files_views.SessionFileView.as_view()),
    path("sessions/<str:session_id>/attachments", files_views.SessionAttachmentsView.as_view()),
    path("attachments/<str:attachment_id>", files_views.AttachmentDetailView.as_view()),
    path("sessions/<str:session_id>/workspace", files_views.SessionWorkspaceView.as_view()),
]
