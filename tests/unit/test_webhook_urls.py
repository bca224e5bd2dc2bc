"""Server-side request forgery: which webhook URLs production refuses (no network: names resolve through a table)."""

from __future__ import annotations

import pytest

from shop.webhooks.urls import UnsafeUrl, check_url

NAMES = {
    "hooks.example.com": ["93.184.215.14"],
    "sneaky.example.com": ["93.184.215.14", "10.0.0.7"],  # one public address is not enough: all must be
    "inside.example.com": ["192.168.1.20"],
    "v6.example.com": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "mapped.example.com": ["::ffff:127.0.0.1"],
}


def table(host: str, port: int) -> list[str]:
    if host in NAMES:
        return NAMES[host]
    return [host] if host[0].isdigit() or ":" in host else []


def production(url: str) -> object:
    return check_url(url, allow_private=False, require_https=True, resolver=table)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://hooks.example.com/shop", "Use an https URL"),
        ("https://127.0.0.1/hook", "not a public address"),
        ("https://169.254.169.254/latest/meta-data/", "not a public address"),  # a cloud's metadata service
        ("https://10.1.2.3/hook", "not a public address"),
        ("https://100.64.0.1/hook", "not a public address"),  # carrier-grade NAT
        ("https://[::1]/hook", "not a public address"),
        ("https://[fd00:ec2::254]/hook", "not a public address"),  # a metadata service over IPv6 (unique local)
        ("https://inside.example.com/hook", "resolves to 192.168.1.20"),
        ("https://sneaky.example.com/hook", "10.0.0.7"),
        ("https://mapped.example.com/hook", "not a public address"),
        ("https://nowhere.example.com/hook", "cannot be resolved"),
        ("https://user:pass@hooks.example.com/hook", "no credentials"),
        ("https:///hook", "no host"),
        ("ftp://hooks.example.com/hook", "https"),
        ("https://hooks.example.com:99999/hook", "Not a URL"),
        ("https://hooks.example.com/" + "a" * 2000, "at most 2000"),
    ],
)
def test_production_refuses_what_would_reach_inside(url: str, reason: str) -> None:
    with pytest.raises(UnsafeUrl, match=reason):
        production(url)


@pytest.mark.parametrize(
    ("url", "port", "addresses"),
    [
        ("https://hooks.example.com/shop?x=1", 443, ("93.184.215.14",)),
        ("https://hooks.example.com:8443/shop", 8443, ("93.184.215.14",)),
        ("https://v6.example.com/shop", 443, ("2606:2800:21f:cb07:6820:80da:af6b:8b2c",)),
    ],
)
def test_public_https_urls_are_taken_with_the_addresses_to_connect_to(
    url: str, port: int, addresses: tuple[str, ...]
) -> None:
    target = check_url(url, allow_private=False, require_https=True, resolver=table)

    assert (target.url, target.port, target.addresses) == (url, port, addresses)


def test_development_settings_allow_a_receiver_on_this_machine() -> None:
    target = check_url("http://127.0.0.1:9000/hook", allow_private=True, require_https=False, resolver=table)

    assert (target.scheme, target.host, target.port) == ("http", "127.0.0.1", 9000)


def test_a_real_name_for_this_machine_is_refused_through_the_real_resolver() -> None:
    with pytest.raises(UnsafeUrl, match="not a public address"):
        check_url("https://localhost/hook", allow_private=False, require_https=True)
