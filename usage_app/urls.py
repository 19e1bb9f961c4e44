from django.urls import path

from usage_app import views

urlpatterns = [
    path("usage", views.UsageListView.as_view()),
    path("usage/stats", views.UsageStatsView.as_view()),
]
