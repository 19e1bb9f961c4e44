from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from ash.core.views import HealthView

urlpatterns = [
    path("health", HealthView.as_view()),
    # Sessions first: they take the traffic (a turn, its events, its files), and Django notes every
    # pattern it tries before the one that matches.
    path("api/", include("sessions_app.urls")),
    path("api/", include("ash.core.urls")),
    path("api/", include("agents_app.urls")),
    path("api/", include("credentials_app.urls")),
    path("api/", include("queue_app.urls")),
    path("api/", include("usage_app.urls")),
    path("docs/json", SpectacularJSONAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[])),
    path("admin/", admin.site.urls),
]

handler400 = "ash.errors.handler400"
handler404 = "ash.errors.handler404"
handler500 = "ash.errors.handler500"
