import pytest

from maraudes.models import Team
from tests.factories import (
    MembershipFactory,
    OrganizationFactory,
    TeamFactory,
    UserFactory,
    user_with_role,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/teams/"


@pytest.fixture
def aurore():
    return OrganizationFactory(name="Aurore")


def test_it_shows_a_field_member_only_their_team(api_as, aurore):
    mine = TeamFactory(organization=aurore, name="Nord")
    TeamFactory(organization=aurore, name="Sud")
    TeamFactory(name="Ailleurs")
    field = user_with_role("field", team=mine)

    response = api_as(field).get(URL)

    assert response.status_code == 200
    assert [t["name"] for t in response.json()] == ["Nord"]


def test_it_shows_a_member_of_two_teams_both(api_as, aurore):
    nord = TeamFactory(organization=aurore, name="Nord")
    sud = TeamFactory(organization=aurore, name="Sud")
    TeamFactory(name="Ailleurs")
    field = user_with_role("field", team=nord)
    MembershipFactory(user=field, organization=aurore, role="field", team=sud)

    response = api_as(field).get(URL)

    assert sorted(t["name"] for t in response.json()) == ["Nord", "Sud"]


@pytest.mark.parametrize("role", ["coordinator", "planner", "admin"])
def test_it_shows_the_coordination_and_planners_every_team(api_as, aurore, role):
    TeamFactory(organization=aurore, name="Nord")
    TeamFactory(name="Ailleurs")
    user = user_with_role(role)

    response = api_as(user).get(URL)

    assert response.status_code == 200
    assert {t["name"] for t in response.json()} == {"Nord", "Ailleurs"}


def test_it_shows_nothing_to_a_user_without_membership(api_as):
    TeamFactory()

    assert api_as(UserFactory()).get(URL).json() == []


def test_it_describes_each_team(api_as, aurore):
    team = TeamFactory(organization=aurore, name="Camion", mode="vehicle", color="#123456")

    (body,) = api_as(user_with_role("coordinator")).get(URL).json()

    assert body == {
        "id": team.id,
        "name": "Camion",
        "organization": aurore.id,
        "mode": "vehicle",
        "coverage_radius_m": 50.0,
        "color": "#123456",
        "is_active": True,
    }


@pytest.mark.parametrize("role", ["coordinator", "admin"])
def test_it_lets_the_coordination_create_a_team(api_as, aurore, role):
    user = user_with_role(role)

    response = api_as(user).post(URL, {"name": "Nord", "organization": aurore.id, "mode": "foot"})

    assert response.status_code == 201
    team = Team.objects.get()
    assert response.json()["id"] == team.id
    assert (team.name, team.organization, team.mode) == ("Nord", aurore, "foot")
    assert response.json()["coverage_radius_m"] == 100.0


def test_it_lets_a_superuser_create_a_team(api_as, aurore):
    root = UserFactory(is_superuser=True)

    response = api_as(root).post(URL, {"name": "Nord", "organization": aurore.id})

    assert response.status_code == 201
    assert response.json()["mode"] == "foot"


def test_it_keeps_a_chosen_radius_and_colour(api_as, aurore):
    user = user_with_role("coordinator")
    payload = {
        "name": "Camion",
        "organization": aurore.id,
        "mode": "vehicle",
        "coverage_radius_m": 80,
        "color": "#AA0000",
    }

    response = api_as(user).post(URL, payload)

    assert response.status_code == 201
    assert response.json()["coverage_radius_m"] == 80.0
    assert response.json()["color"] == "#AA0000"


def test_it_forbids_a_planner_to_create_a_team(api_as, aurore):
    response = api_as(user_with_role("planner")).post(URL, {"name": "N", "organization": aurore.id})

    assert response.status_code == 403
    assert not Team.objects.exists()


def test_it_forbids_a_field_member_to_create_a_team(api_as, aurore):
    field = user_with_role("field", team=TeamFactory(organization=aurore, name="Nord"))

    response = api_as(field).post(URL, {"name": "Sud", "organization": aurore.id})

    assert response.status_code == 403
    assert "coordination" in response.json()["detail"]


def test_it_rejects_a_duplicate_name_in_the_same_organization(api_as, aurore):
    TeamFactory(organization=aurore, name="Nord")
    user = user_with_role("coordinator")

    response = api_as(user).post(URL, {"name": "Nord", "organization": aurore.id})

    assert response.status_code == 400
    assert list(response.json()) == ["name"]
    assert "Nord" in response.json()["name"][0]


def test_it_accepts_the_same_name_in_another_organization(api_as, aurore):
    TeamFactory(organization=aurore, name="Nord")
    other = OrganizationFactory(name="Emmaüs")

    response = api_as(user_with_role("coordinator")).post(
        URL, {"name": "Nord", "organization": other.id}
    )

    assert response.status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"captain": "Léa"}, "captain"),
        ({"name": 7}, "name"),
        ({"name": ""}, "name"),
        ({"organization": "Aurore"}, "organization"),
        ({"organization": 1.5}, "organization"),
        ({"organization": True}, "organization"),
        ({"organization": 999_999}, "organization"),
        ({"mode": "bike"}, "mode"),
        ({"mode": 1}, "mode"),
        ({"coverage_radius_m": "beaucoup"}, "coverage_radius_m"),
        ({"coverage_radius_m": 0}, "coverage_radius_m"),
        ({"color": "red"}, "color"),
    ],
)
def test_it_rejects_bad_input_naming_the_field(api_as, aurore, change, field):
    payload = {"name": "Nord", "organization": aurore.id, "mode": "foot", **change}

    response = api_as(user_with_role("coordinator")).post(URL, payload, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not Team.objects.exists()


def test_it_requires_a_name_and_an_organization(api_as):
    response = api_as(user_with_role("coordinator")).post(URL, {})

    assert response.status_code == 400
    assert set(response.json()) == {"name", "organization"}


def test_it_rejects_a_body_that_is_not_an_object(api_as):
    response = api_as(user_with_role("coordinator")).post(URL, ["Nord"], format="json")

    assert response.status_code == 400


@pytest.mark.parametrize("role", ["coordinator", "field"])
def test_it_lists_teams_in_a_constant_number_of_queries(
    api_as, aurore, role, django_assert_max_num_queries
):
    mine = TeamFactory(organization=aurore)
    client = api_as(user_with_role(role, team=mine if role == "field" else None))
    TeamFactory.create_batch(15)
    TeamFactory.create_batch(5, organization=aurore)

    # token + roles + (field: team ids) + teams, however many teams there are
    with django_assert_max_num_queries(4):
        response = client.get(URL)

    assert response.status_code == 200
    assert len(response.json()) == (1 if role == "field" else 21)
