"""One way to make a boto3 client from the standard AWS environment, with its failures as one-line configuration errors."""

from __future__ import annotations

from typing import Any

from consumer.core import ConfigurationError
from consumer.text import one_line


def aws_client(service: str, config: Any, endpoint_source: str, endpoint_url: str | None = None,
               region: str | None = None, default_region: str | None = None) -> Any:
    """A boto3 client for `service`; ConfigurationError naming the profile, the config files or the endpoint.

    Without `endpoint_url`, boto3's own AWS_ENDPOINT_URL_<SERVICE> / AWS_ENDPOINT_URL apply; `endpoint_source`
    names where a bad endpoint came from, for the message. The region is the session's, else `region`, else
    `default_region` (None: boto3's own rule).
    """
    import boto3
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    try:
        session = boto3.session.Session()
        region_name = session.region_name or region or default_region
        return session.client(service, endpoint_url=endpoint_url, region_name=region_name, config=config)
    except ProfileNotFound as error:
        raise ConfigurationError(
            f"AWS_PROFILE={error.kwargs.get('profile')!r} names no profile in the AWS config files (~/.aws/config, "
            "~/.aws/credentials): fix or unset AWS_PROFILE"
        ) from error
    except BotoCoreError as error:  # a broken ~/.aws/config, ...
        raise ConfigurationError(f"the AWS configuration cannot be used: {one_line(str(error))}") from error
    except ValueError as error:  # an endpoint that is not a URL
        raise ConfigurationError(f"{endpoint_source}: {one_line(str(error))}") from error
