"""Regional endpoints come from a table like the official SDK's, never from a formatted string."""

from __future__ import annotations

import pytest
from huaweicloudsdkdli.v1.region.dli_region import DliRegion

from monitor.app.config import ConfigError, Settings, load_settings
from monitor.dli.regions import ENDPOINTS, region_of


def test_the_table_matches_the_official_sdk() -> None:
    sdk = {region.id: region.endpoints[0] for region in DliRegion.static_fields.values()}
    assert dict(ENDPOINTS) == sdk


def test_a_region_on_another_domain_gets_its_own_endpoint() -> None:
    settings = Settings(project_id="p1", region="eu-west-101", auth="none")
    assert settings.base_url == "https://dli.eu-west-101.myhuaweicloud.eu"


def test_an_unknown_region_is_a_config_error_naming_the_override(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DLI_MONITOR_PROJECT_ID", "p1")
    monkeypatch.setenv("DLI_MONITOR_AUTH", "none")
    monkeypatch.setenv("DLI_MONITOR_REGION", "xx-nowhere-9")
    with pytest.raises(ConfigError, match="DLI_MONITOR_ENDPOINT") as info:
        load_settings(None)
    assert "\n" not in str(info.value) and "xx-nowhere-9" in str(info.value)
    monkeypatch.setenv("DLI_MONITOR_ENDPOINT", "https://dli.xx-nowhere-9.example.com")
    assert load_settings(None).base_url == "https://dli.xx-nowhere-9.example.com"


def test_the_region_label_comes_from_a_public_endpoint_only() -> None:
    assert region_of("https://dli.cn-north-4.myhuaweicloud.com/") == "cn-north-4"
    assert region_of("https://DLI.eu-west-101.myhuaweicloud.eu") == "eu-west-101"
    assert region_of("http://127.0.0.1:8080") is None
    assert region_of("https://dli.cn-north-4.example.internal") is None, "never guessed from a host"
