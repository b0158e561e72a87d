"""The project's URLs plus stand-ins for the main screens other issues will build."""

from django.http import HttpResponse
from django.urls import path

from maraudes.urls import urlpatterns as project_urlpatterns


def _screen(request):
    return HttpResponse(request.path)


urlpatterns = [
    path("carte/", _screen),
    path("equipe/", _screen),
    path("rapports/", _screen),
    *project_urlpatterns,
]
