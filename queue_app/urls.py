from django.urls import path

from queue_app import views

urlpatterns = [
    path("queue", views.QueueListCreateView.as_view()),
    path("queue/stats", views.QueueStatsView.as_view()),
    path("queue/<str:item_id>", views.QueueItemDetailView.as_view()),
]
