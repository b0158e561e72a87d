from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token

from api import views

urlpatterns = [
    path("auth/token/", obtain_auth_token, name="api-token"),
    path("organizations/", views.OrganizationListCreateApi.as_view(), name="organizations"),
    path("teams/", views.TeamListCreateApi.as_view(), name="teams"),
    path("zones/", views.ZoneListApi.as_view(), name="zones"),
]
