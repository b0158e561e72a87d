from django.contrib.auth import views as auth_views
from django.urls import include, path

from frontend import views
from frontend.map import coordinator_map
from frontend.reports import weekly_report_page

urlpatterns = [
    path("", views.home, name="home"),
    path("carte/", coordinator_map, name="map"),
    path("rapports/", weekly_report_page, name="reports"),
    path("equipe/", include("frontend.team")),
    path(
        "connexion/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("deconnexion/", auth_views.LogoutView.as_view(), name="logout"),
]
