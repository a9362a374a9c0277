"""Checks of scripts/contract-check beyond schemathesis's own (loaded via SCHEMATHESIS_HOOKS)."""

import json

import schemathesis

# The codes the api answers when a request breaks its own contract (the framework's parse errors
# and the field validation). A request generated to satisfy the schema must never get them.
MALFORMED = {"bad_request", "validation_failed"}


@schemathesis.check
def schema_valid_request_is_well_formed(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if response.status_code not in (400, 422):
        return None
    try:
        code = json.loads(response.content)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    if code in MALFORMED:
        raise AssertionError(
            f"a request valid by the schema was refused as malformed ({response.status_code} {code}): "
            f"the document allows what the code refuses\n{response.content[:500]!r}"
        )
    return None
