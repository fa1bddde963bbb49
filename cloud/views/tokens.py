"""Tokens an operator issues by hand (goodwill credit, a refund): a credit through the one
payment path, answered with the token to read to the customer."""

from aiohttp import web

from cloud.auth import require_operator
from cloud.errors import field, read_json_object
from cloud.keys import PAYMENTS
from cloud.operator_tokens import issue_operator_token
from cloud.tokens import display
from cloud.views.common import meter_from_path, principal

routes = web.RouteTableDef()


def token_view(transaction):
    """A transaction as the API shows it: the token in the groups of three a customer types."""
    return dict(transaction, id=transaction["transaction_id"],
                token=display(transaction.get("token")))


@routes.post("/api/meters/{meterId}/tokens")
async def issue_token(request):
    who = await principal(request)
    require_operator(who)
    meter = await meter_from_path(request)
    body = await read_json_object(request)
    created, transaction = await issue_operator_token(
        request.app[PAYMENTS], who.user_id, meter, field(body, "amount_kes", int),
        field(body, "reason", str), field(body, "request_id", str, required=False))
    # a retried request_id answers the token it already made, and credits nothing more
    return web.json_response(token_view(transaction), status=201 if created else 200)
