import pytest

from maraudes.models import Organization
from tests.factories import OrganizationFactory, TeamFactory, UserFactory, user_with_role

pytestmark = pytest.mark.django_db

URL = "/api/v1/organizations/"


@pytest.fixture
def superuser():
    return UserFactory(username="root", is_superuser=True, is_staff=True)


def names(response) -> list[str]:
    return [o["name"] for o in response.json()]


def test_it_shows_a_field_member_only_their_own_organization(api_as):
    aurore = OrganizationFactory(name="Aurore")
    OrganizationFactory(name="Emmaüs")
    field = user_with_role("field", team=TeamFactory(organization=aurore))

    response = api_as(field).get(URL)

    assert response.status_code == 200
    assert names(response) == ["Aurore"]


@pytest.mark.parametrize("role", ["coordinator", "planner", "admin"])
def test_it_shows_the_coordination_and_planners_every_organization(api_as, role):
    OrganizationFactory(name="Aurore")
    OrganizationFactory(name="Emmaüs")
    user = user_with_role(role)

    response = api_as(user).get(URL)

    assert response.status_code == 200
    assert {"Aurore", "Emmaüs"} <= set(names(response))
    assert names(response) == sorted(names(response))


def test_it_shows_nothing_to_a_user_without_membership(api_as):
    OrganizationFactory(name="Aurore")

    response = api_as(UserFactory()).get(URL)

    assert response.status_code == 200
    assert response.json() == []


def test_it_lets_a_superuser_create_an_organization(api_as, superuser):
    response = api_as(superuser).post(URL, {"name": "  Croix-Rouge  "})

    assert response.status_code == 201
    org = Organization.objects.get()
    assert response.json() == {"id": org.id, "name": "Croix-Rouge"}


def test_it_lets_an_admin_member_create_an_organization(api_as):
    admin = user_with_role("admin")

    response = api_as(admin).post(URL, {"name": "Samusocial"})

    assert response.status_code == 201


@pytest.mark.parametrize("role", ["coordinator", "planner"])
def test_it_forbids_other_roles_to_create_an_organization(api_as, role):
    user = user_with_role(role)

    response = api_as(user).post(URL, {"name": "Samusocial"})

    assert response.status_code == 403
    assert not Organization.objects.filter(name="Samusocial").exists()


def test_it_forbids_a_field_member_to_create_an_organization(api_as):
    field = user_with_role("field", team=TeamFactory())

    assert api_as(field).post(URL, {"name": "Samusocial"}).status_code == 403


def test_it_rejects_a_duplicate_name_whatever_its_case(api_as, superuser):
    OrganizationFactory(name="Aurore")

    response = api_as(superuser).post(URL, {"name": "AURORE"})

    assert response.status_code == 400
    assert list(response.json()) == ["name"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "Aurore", "city": "Paris"}, "city"),
        ({"name": 42}, "name"),
        ({"name": ["Aurore"]}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({}, "name"),
    ],
)
def test_it_rejects_bad_input_naming_the_field(api_as, superuser, payload, field):
    response = api_as(superuser).post(URL, payload, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not Organization.objects.exists()


def test_it_lists_organizations_in_a_constant_number_of_queries(
    api_as, django_assert_max_num_queries
):
    client = api_as(user_with_role("coordinator"))
    OrganizationFactory.create_batch(20)

    with django_assert_max_num_queries(3):
        response = client.get(URL)

    assert len(response.json()) == 21
