"""DLI's public endpoints by region, as the official SDK's region table has them.

Most are ``https://dli.{region}.myhuaweicloud.com``, but not all (``eu-west-101`` is on a
``.eu`` domain), so the endpoint is looked up, never formatted. A region missing here is a
configuration error that names ``DLI_MONITOR_ENDPOINT``, the override for new regions and private
endpoints. Kept in step with ``huaweicloudsdkdli.v1.region.dli_region`` (a test compares them).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["ENDPOINTS", "endpoint_for", "region_of"]

ENDPOINTS: Mapping[str, str] = MappingProxyType(
    {
        "ae-ad-1": "https://dli.ae-ad-1.myhuaweicloud.com",
        "af-north-1": "https://dli.af-north-1.myhuaweicloud.com",
        "af-south-1": "https://dli.af-south-1.myhuaweicloud.com",
        "ap-southeast-1": "https://dli.ap-southeast-1.myhuaweicloud.com",
        "ap-southeast-2": "https://dli.ap-southeast-2.myhuaweicloud.com",
        "ap-southeast-3": "https://dli.ap-southeast-3.myhuaweicloud.com",
        "ap-southeast-4": "https://dli.ap-southeast-4.myhuaweicloud.com",
        "cn-east-2": "https://dli.cn-east-2.myhuaweicloud.com",
        "cn-east-3": "https://dli.cn-east-3.myhuaweicloud.com",
        "cn-east-4": "https://dli.cn-east-4.myhuaweicloud.com",
        "cn-east-5": "https://dli.cn-east-5.myhuaweicloud.com",
        "cn-north-1": "https://dli.cn-north-1.myhuaweicloud.com",
        "cn-north-2": "https://dli.cn-north-2.myhuaweicloud.com",
        "cn-north-4": "https://dli.cn-north-4.myhuaweicloud.com",
        "cn-north-9": "https://dli.cn-north-9.myhuaweicloud.com",
        "cn-south-1": "https://dli.cn-south-1.myhuaweicloud.com",
        "cn-southwest-2": "https://dli.cn-southwest-2.myhuaweicloud.com",
        "eu-west-0": "https://dli.eu-west-0.myhuaweicloud.com",
        "eu-west-101": "https://dli.eu-west-101.myhuaweicloud.eu",
        "la-north-2": "https://dli.la-north-2.myhuaweicloud.com",
        "la-south-2": "https://dli.la-south-2.myhuaweicloud.com",
        "me-east-1": "https://dli.me-east-1.myhuaweicloud.com",
        "my-kualalumpur-1": "https://dli.my-kualalumpur-1.myhuaweicloud.com",
        "na-mexico-1": "https://dli.na-mexico-1.myhuaweicloud.com",
        "ru-moscow-1": "https://dli.ru-moscow-1.myhuaweicloud.com",
        "ru-northwest-2": "https://dli.ru-northwest-2.myhuaweicloud.com",
        "sa-brazil-1": "https://dli.sa-brazil-1.myhuaweicloud.com",
        "tr-west-1": "https://dli.tr-west-1.myhuaweicloud.com",
    }
)


def endpoint_for(region: str) -> str | None:
    """The public DLI endpoint of ``region``, or ``None`` if this table does not know it."""
    return ENDPOINTS.get(region)


def region_of(endpoint: str) -> str | None:
    """The region whose public endpoint ``endpoint`` is, or ``None`` (a private endpoint, a
    simulator): the ``region`` label is then left empty rather than guessed from the host."""
    wanted = endpoint.rstrip("/").lower()
    return next((region for region, url in ENDPOINTS.items() if url == wanted), None)
