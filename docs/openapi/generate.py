#!/usr/bin/env python3
"""Writes the OpenAPI 3.1 documents both services serve at GET /openapi.json.

    python3 docs/openapi/generate.py

Output: Sources/ManaSync/OpenAPI/openapi.json and Sources/ManaCredits/OpenAPI/openapi.json,
the resources the executables ship; docs/openapi/mana-sync.json and mana-credits.json are
links to them, not copies. `swift test` checks that every route of each router is
documented and every documented operation exists.
"""
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def obj(properties, required=()):
    return {"type": "object", "properties": properties, "required": list(required)}


S = {"type": "string"}
I = {"type": "integer"}
B = {"type": "boolean"}
N = {"type": "number"}
T = {"type": "string", "format": "date-time"}
NT = {"type": ["string", "null"], "format": "date-time"}
NS = {"type": ["string", "null"]}
ANY = {}


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def body(schema, required=True):
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def ok(schema, description="OK", code="200"):
    return {code: {"description": description, "content": {"application/json": {"schema": schema}}}}


def errors(envelope, *codes):
    descriptions = {
        "400": "Bad input (the message and details.field name the problem)", "401": "Missing or invalid credentials",
        "402": "Payment required", "403": "Forbidden", "404": "Not found", "409": "Conflict", "413": "Body too large",
        "429": "Too many requests (Retry-After)", "502": "Upstream refused", "503": "Unavailable", "504": "Upstream timeout",
    }
    return {c: {"description": descriptions[c], "content": {"application/json": {"schema": ref(envelope)}}} for c in codes}


def op(summary, responses, security=None, request=None, parameters=None):
    operation = {"summary": summary, "responses": responses}
    if security is not None:
        operation["security"] = security
    if request is not None:
        operation["requestBody"] = request
    if parameters:
        operation["parameters"] = parameters
    return operation


def path_param(name, schema=S):
    return {"name": name, "in": "path", "required": True, "schema": schema}


def query(name, schema, required=False):
    return {"name": name, "in": "query", "required": required, "schema": schema}


def header(name, required=False):
    return {"name": name, "in": "header", "required": required, "schema": S}


JWT = [{"bearer": []}]
SERVICE = [{"serviceKey": []}]
PUBLIC = []

COMMON_SECURITY = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "serviceKey": {"type": "apiKey", "in": "header", "name": "X-Service-Key"},
}


def health_paths(envelope):
    return {
        "/health": {"get": op("Liveness", ok(obj({"status": S, "service": S, "timestamp": S}, ["status", "service"])), PUBLIC)},
        "/ready": {"get": op("Readiness: the database answers", {
            **ok(obj({"status": S, "service": S, "database": B})),
            "503": {"description": "Database unreachable", "content": {"application/json": {"schema": obj({"status": S, "service": S, "database": B})}}},
        }, PUBLIC)},
        "/metrics": {"get": op("Prometheus metrics", {"200": {"description": "Prometheus text", "content": {"text/plain": {"schema": S}}}}, PUBLIC)},
        "/openapi.json": {"get": op("This document", ok(obj({"openapi": S})), PUBLIC)},
    }


def with_transport_errors(paths, envelope):
    """Every operation may answer 503 (database unavailable, or the request deadline
    HTTP_REQUEST_TIMEOUT passed; Retry-After) and, when it reads a body, 408 (the body did not
    arrive within HTTP_BODY_TIMEOUT)."""
    for item in paths.values():
        for method, operation in item.items():
            extra = ["503"] + (["408"] if "requestBody" in operation else [])
            for code in extra:
                operation["responses"].setdefault(code, {
                    "description": {"503": "Unavailable: database unreachable or request deadline passed (Retry-After)",
                                    "408": "Request body too slow"}[code],
                    "content": {"application/json": {"schema": ref(envelope)}}})
    return paths


def document(title, description, port, paths, schemas, envelope):
    paths = with_transport_errors(paths, envelope)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0.0", "description": description},
        "servers": [{"url": f"http://localhost:{port}"}],
        "paths": {**health_paths(envelope), **paths},
        "components": {"securitySchemes": COMMON_SECURITY, "schemas": schemas},
    }


# ---------------------------------------------------------------- mana-sync

sync_error = obj({"error": S, "message": S, "details": {"type": "object"}}, ["error", "message"])
# A field entry carries its client timestamp as `updatedAt` or (newer clients) `at`; a missing
# `value` means null. Other keys of a change (spaceId, actor, origin, schemaVersion, ...) are
# stored and served verbatim; served changes also carry the server's `eventId`.
field_entry = {"type": "object", "properties": {"value": ANY, "updatedAt": S, "at": S},
               "anyOf": [{"required": ["updatedAt"]}, {"required": ["at"]}]}
change = {**obj({
    "table": S, "id": S, "op": {"enum": ["insert", "update", "delete"]}, "data": ANY,
    "fields": {"type": "object", "additionalProperties": field_entry},
    "deletedAt": NS, "spaceId": S, "actor": ANY, "origin": S,
    "schemaVersion": {"type": "integer", "minimum": 1, "maximum": 1},
    "eventId": {"type": "string", "format": "uuid", "description": "the stored change's id (served; ignored on push)"},
}, ["table", "id", "op"]), "additionalProperties": True}
sync_page = obj({"serverChanges": {"type": "array", "items": ref("Change")}, "conflicts": {"type": "array"},
                 "syncedUntil": T, "hasMore": B}, ["serverChanges", "conflicts", "syncedUntil", "hasMore"])
app_id = path_param("appId", {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"})
sync_paths = {
    "/sync/{appId}": {"post": op(
        "Push a batch of changes; answers the changes other clients stored since `since`",
        {**ok(ref("SyncPage")), **errors("Error", "400", "401", "402", "413")}, JWT,
        body(obj({"clientId": S, "since": NT, "schemaVersion": {"type": "integer", "minimum": 1, "maximum": 1},
                  "changes": {"type": "array", "items": ref("Change"), "maxItems": 50000}}, ["changes"])),
        [app_id, header("X-Client-Id"), header("Idempotency-Key")])},
    "/sync/{appId}/pull": {"get": op(
        "Pull one table's changes after a cursor", {**ok(ref("SyncPage")), **errors("Error", "400", "401", "402")}, JWT,
        parameters=[app_id, query("collection", S, True), query("since", S, True),
                    query("limit", {"type": "integer", "minimum": 1, "maximum": 5000}), header("X-Client-Id")])},
    "/sync/{appId}/stream": {"get": op(
        "Server-sent events: catch-up pages, then live `changes` events and `heartbeat`s",
        {"200": {"description": "text/event-stream", "content": {"text/event-stream": {"schema": S}}},
         **errors("Error", "400", "401", "402")}, JWT,
        parameters=[app_id, query("collections", S, True), query("since", S), header("X-Client-Id")])},
    "/ws": {"get": op(
        "WebSocket (unified): send {type: auth, token, clientId?} first; then sync-available, ping/pong",
        {"101": {"description": "Switching protocols"}}, PUBLIC)},
    "/ws/{appId}": {"get": op(
        "WebSocket (legacy, one app)", {"101": {"description": "Switching protocols"}}, PUBLIC, parameters=[app_id])},
    "/internal/billing/invalidate/{userId}": {"post": op(
        "Drop a user's cached subscription answer on every replica",
        {**ok(obj({"userId": S, "invalidated": B}, ["userId", "invalidated"])), **errors("Error", "400", "401")}, SERVICE,
        parameters=[path_param("userId")])},
}
sync_doc = document(
    "mana-sync", "Sync server of the local-first apps: push, pull, SSE stream, WebSocket notices, billing gate.", 3050,
    sync_paths, {"Error": sync_error, "Change": change, "SyncPage": sync_page}, "Error")

# ---------------------------------------------------------------- mana-credits

credits_error = obj({"statusCode": I, "message": S, "details": {"type": "object"}}, ["statusCode", "message"])
transaction = obj({
    "id": S, "userId": S, "type": {"enum": ["purchase", "usage", "refund", "gift", "reversal", "grant"]},
    "status": {"enum": ["pending", "completed", "failed", "cancelled"]}, "amount": I,
    "balanceBefore": I, "balanceAfter": I, "appId": S, "description": S, "metadata": ANY, "idempotencyKey": NS,
    "createdAt": T, "completedAt": NT,
}, ["id", "userId", "type", "status", "amount", "balanceBefore", "balanceAfter", "appId", "description", "metadata",
    "idempotencyKey", "createdAt", "completedAt"])
balance = obj({"balance": I, "totalEarned": I, "totalSpent": I, "reserved": I}, ["balance"])
NANY = {"type": ["object", "null"]}
package = obj({"id": S, "name": S, "description": S, "credits": I, "priceEuroCents": I, "currency": S, "stripePriceId": NS,
               "active": B, "sortOrder": I, "metadata": NANY, "createdAt": T, "updatedAt": T},
              ["id", "name", "description", "credits", "priceEuroCents", "stripePriceId", "active", "sortOrder", "metadata",
               "createdAt", "updatedAt"])
purchase = obj({"id": S, "userId": S, "packageId": S, "credits": I, "priceEuroCents": I, "currency": S,
                "stripePaymentIntentId": NS, "stripeCustomerId": NS, "status": {"enum": ["pending", "completed", "failed", "partially_refunded", "refunded", "disputed"]},
                "metadata": NANY, "createdAt": T, "completedAt": NT},
               ["id", "userId", "packageId", "credits", "priceEuroCents", "stripePaymentIntentId", "stripeCustomerId", "status",
                "metadata", "createdAt", "completedAt"])
received_gift = obj({"id": S, "giftCodeId": S, "redeemerUserId": S, "status": {"enum": ["success"]}, "creditsReceived": I,
                     "creditTransactionId": NS, "sourceAppId": NS, "createdAt": T, "code": S, "creatorName": NS, "message": NS,
                     "redeemedAt": T},
                    ["id", "giftCodeId", "redeemerUserId", "status", "creditsReceived", "creditTransactionId", "sourceAppId",
                     "createdAt", "code", "creatorName", "message", "redeemedAt"])
admin_refusal = obj({"statusCode": {"const": 403}, "error": {"const": "Forbidden"}, "message": {"const": "Admin access required"}},
                    ["statusCode", "error", "message"])
sync_status = obj({"active": B, "interval": {"enum": ["monthly", "quarterly", "yearly"]}, "nextChargeAt": NT, "pausedAt": NT,
                   "gifted": B}, ["active", "interval", "nextChargeAt", "pausedAt", "gifted"])
gift_public = obj({"code": S, "type": {"enum": ["simple", "personalized"]}, "status": S, "totalCredits": I, "redeemed": B,
                   "message": NS, "creatorName": NS, "expiresAt": T}, ["code", "type", "status", "totalCredits", "redeemed"])
gift_owner = {"allOf": [ref("GiftPublic"), obj({"id": S, "shortUrl": S, "targetEmail": NS, "createdAt": T}, ["id", "shortUrl"])]}
use_body = obj({"amount": {"type": "integer", "minimum": 1}, "appId": S, "description": S, "idempotencyKey": S, "metadata": ANY},
               ["amount", "appId", "description"])
use_answer = obj({"success": B, "transaction": ref("Transaction"), "newBalance": obj({"balance": I, "totalSpent": I}),
                  "message": S}, ["success", "transaction"])
interval_body = obj({"interval": {"enum": ["monthly", "quarterly", "yearly"]}})
user_id = path_param("userId")
E = lambda *codes: errors("Error", *codes)
ADMIN_403 = {"403": {"description": "Not an admin (the original's body, with error)",
                     "content": {"application/json": {"schema": ref("AdminRefusal")}}}}
credits_paths = {
    "/api/v1/credits/balance": {"get": op("The caller's balance", {**ok(ref("Balance")), **E("401")}, JWT)},
    "/api/v1/credits/use": {"post": op("Spend credits (idempotent with idempotencyKey)",
                                       {**ok(ref("UseAnswer")), **E("400", "401", "402", "409", "413")}, JWT, body(use_body))},
    "/api/v1/credits/transactions": {"get": op("The caller's ledger, newest first",
                                               {**ok({"type": "array", "items": ref("Transaction")}), **E("400", "401")}, JWT,
                                               parameters=[query("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
                                                           query("offset", {"type": "integer", "minimum": 0})])},
    "/api/v1/credits/purchases": {"get": op("The caller's purchases", {**ok({"type": "array", "items": ref("Purchase")}), **E("401")}, JWT)},
    "/api/v1/credits/packages": {"get": op("Packages on sale", {**ok({"type": "array", "items": ref("Package")}), **E("401")}, JWT)},
    "/api/v1/credits/purchase": {"post": op("Start a Stripe purchase of a package",
                                            {**ok(obj({"purchaseId": S, "clientSecret": NS, "amount": I, "credits": I},
                                                      ["purchaseId", "amount", "credits"])),
                                             **E("400", "401", "402", "404", "502", "503", "504")}, JWT,
                                            body(obj({"packageId": {"type": "string", "format": "uuid"}}, ["packageId"])))},
    "/api/v1/credits/purchase/{id}": {"get": op("One of the caller's purchases", {**ok(ref("Purchase")), **E("401", "404")}, JWT,
                                                parameters=[path_param("id")])},
    "/api/v1/sync/status": {"get": op("The caller's Cloud Sync subscription", {**ok(ref("SyncStatus")), **E("401")}, JWT)},
    "/api/v1/sync/activate": {"post": op("Pay and activate Cloud Sync",
                                         {**ok(obj({"success": B, "active": B, "interval": S, "nextChargeAt": NT, "amountCharged": I},
                                                   ["success", "active", "interval", "amountCharged"])),
                                          **E("400", "401", "402")}, JWT, body(interval_body, required=False))},
    "/api/v1/sync/deactivate": {"post": op("Stop renewals", {**ok(obj({"success": B}, ["success"])), **E("400", "401")}, JWT)},
    "/api/v1/sync/change-interval": {"post": op(
        "Change the interval from the next charge on; nothing is charged now: amountCharged (as the original) and nextAmount "
        "are the new interval's price, charged from effectiveAt",
                                                {**ok(obj({"success": B, "interval": S, "amountCharged": I, "nextAmount": I,
                                                           "effectiveAt": NT}, ["success", "interval", "amountCharged", "effectiveAt"])),
                                                 **E("400", "401")}, JWT, body(obj({"interval": interval_body["properties"]["interval"]}, ["interval"])))},
    "/api/v1/admin/sync/{userId}": {"get": op("Any user's subscription (admin)",
                                              {**ok({"allOf": [ref("SyncStatus"), obj({"userId": S, "amountCharged": I, "activatedAt": NT,
                                                                                       "giftedBy": NS, "giftedAt": NT})]}),
                                               **E("400", "401"), **ADMIN_403}, JWT, parameters=[user_id])},
    "/api/v1/admin/sync/{userId}/gift": {
        "post": op("Gift Cloud Sync (admin)", {**ok(obj({"success": B, "userId": S, "gifted": B, "active": B})), **E("400", "401"), **ADMIN_403},
                   JWT, parameters=[user_id]),
        "delete": op("Revoke a gift (admin)", {**ok(obj({"success": B, "userId": S, "gifted": B, "active": B})),
                                               **E("400", "401", "404"), **ADMIN_403}, JWT, parameters=[user_id])},
    "/api/v1/gifts": {"post": op("Create a gift code (debits the creator)",
                                 {"201": {"description": "Created", "content": {"application/json": {"schema": ref("GiftOwner")}}},
                                  **E("400", "401", "402", "413")}, JWT,
                                 body(obj({"credits": {"type": "integer", "minimum": 1, "maximum": 10000}, "message": {"type": "string", "maxLength": 500},
                                           "type": {"enum": ["simple", "personalized"]}, "targetEmail": S,
                                           "expirationDays": {"type": "integer", "minimum": 1, "maximum": 365},
                                           "creatorName": {"type": "string", "maxLength": 100,
                                                           "description": "default: the token's name claim, else its email before '@'"}},
                                          ["credits"])))},
    "/api/v1/gifts/me/created": {"get": op("Codes the caller created", {**ok({"type": "array", "items": ref("GiftOwner")}), **E("401")}, JWT)},
    "/api/v1/gifts/me/received": {"get": op("The caller's successful redemptions, newest first",
                                            {**ok({"type": "array", "items": ref("ReceivedGift")}), **E("401")}, JWT)},
    "/api/v1/gifts/{code}": {
        "get": op("Look up a code (public, rate limited; never shows targetEmail)", {**ok(ref("GiftPublic")), **E("404", "429")}, PUBLIC,
                  parameters=[path_param("code")]),
        "delete": op("Cancel one's own active code by id; refunds it", {**ok(obj({"success": B, "refundedCredits": I})),
                                                                        **E("400", "401", "404")}, JWT, parameters=[path_param("code")])},
    "/api/v1/gifts/{code}/redeem": {"post": op("Redeem a code (rate limited)",
                                               {**ok(obj({"success": B, "creditsReceived": I, "message": NS, "creatorName": NS},
                                                         ["success", "creditsReceived"])),
                                                **E("400", "401", "403", "404", "429")}, JWT,
                                               body(obj({"sourceAppId": S}), required=False), [path_param("code")])},
    "/api/v1/internal/credits/balance/{userId}": {"get": op("A user's balance", {**ok(ref("Balance")), **E("401")}, SERVICE,
                                                            parameters=[user_id])},
    "/api/v1/internal/credits/use": {"post": op("Spend a user's credits", {**ok(ref("UseAnswer")), **E("400", "401", "402", "409")},
                                                SERVICE, body({"allOf": [use_body, obj({"userId": S}, ["userId"])]}))},
    "/api/v1/internal/credits/refund": {"post": op("Credit a user (refund), once per idempotency key (body idempotencyKey or "
                                                   "Idempotency-Key header), at most REFUND_MAX_AMOUNT credits",
                                                   {**ok(obj({"success": B, "transaction": ref("Transaction"), "newBalance": obj({"balance": I}),
                                                              "message": S})),
                                                    **E("400", "401", "409")}, SERVICE,
                                                   body(obj({"userId": S, "amount": {"type": "integer", "minimum": 1}, "description": S,
                                                             "appId": S, "metadata": ANY, "idempotencyKey": S},
                                                            ["userId", "amount", "description"])),
                                                   [{"name": "Idempotency-Key", "in": "header", "required": False,
                                                     "schema": {"type": "string"}}])},
    "/api/v1/internal/credits/init": {"post": op("Create a user's balance (idempotent)", {**ok(ref("Balance")), **E("400", "401")}, SERVICE,
                                                 body(obj({"userId": S}, ["userId"])))},
    "/api/v1/internal/credits/reserve": {"post": op(
        "Hold credits until a commit, a refund or the expiry (ttlSeconds 60-86400, default 3600); idempotent with "
        "idempotencyKey (or the Idempotency-Key header): a repeat answers the first reservation, other parameters 409",
        {**ok(obj({"reservationId": S, "balance": I, "status": {"enum": ["reserved", "committed", "refunded", "expired"]},
                   "expiresAt": T}, ["reservationId", "balance", "status", "expiresAt"])),
         **E("400", "401", "402", "404", "409")}, SERVICE,
        body(obj({"userId": S, "amount": {"type": "integer", "minimum": 1, "maximum": 1000000}, "reason": S,
                  "idempotencyKey": S, "ttlSeconds": {"type": "integer", "minimum": 60, "maximum": 86400}},
                 ["userId", "amount", "reason"])),
        [{"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}}])},
    "/api/v1/internal/credits/commit": {"post": op(
        "Spend a reservation's credits; a committed one answers the same transaction (alreadyResolved), "
        "a refunded or expired one is 409 with details.status",
        {**ok(obj({"success": B, "transactionId": S, "status": S, "alreadyResolved": B}, ["success", "transactionId", "status"])),
         **E("400", "401", "404", "409")}, SERVICE,
        body(obj({"reservationId": S, "description": S}, ["reservationId"])))},
    "/api/v1/internal/credits/refund-reservation": {"post": op(
        "Give a reservation's credits back; a refunded or expired one answers the balance (alreadyResolved), "
        "a committed one is 409 with details.status",
        {**ok(obj({"success": B, "balance": I, "status": S, "alreadyResolved": B}, ["success", "balance"])),
         **E("400", "401", "404", "409")}, SERVICE, body(obj({"reservationId": S}, ["reservationId"])))},
    "/api/v1/internal/credits/grant": {"post": op(
        "Credit a reward once per (userId, referenceId); a repeat answers alreadyGranted and the first transaction, "
        "the same referenceId with another amount is 409",
        {**ok(obj({"ok": B, "alreadyGranted": B, "newBalance": I, "transactionId": S},
                  ["ok", "alreadyGranted", "newBalance", "transactionId"])),
         **E("400", "401", "409")}, SERVICE,
        body(obj({"userId": S, "amount": {"type": "integer", "minimum": 1, "maximum": 1000000}, "reason": S, "referenceId": S,
                  "description": S}, ["userId", "amount", "reason", "referenceId"])))},
    "/api/v1/internal/gifts/redeem-pending": {"post": op("Redeem pending personalized gifts for a new user",
                                                         {**ok(obj({"redeemed": I, "totalCredits": I}, ["redeemed", "totalCredits"])),
                                                          **E("400", "401")}, SERVICE, body(obj({"userId": S, "email": S}, ["userId", "email"])))},
    "/api/v1/internal/sync/status/{userId}": {"get": op("A user's Cloud Sync status (the billing gate asks this)",
                                                        {**ok(ref("SyncStatus")), **E("400", "401")}, SERVICE, parameters=[user_id])},
    "/api/v1/internal/sync/charge-recurring": {"post": op("Charge every due subscription once",
                                                          {**ok(obj({"charged": I, "paused": I, "errors": I, "total": I},
                                                                    ["charged", "paused", "errors", "total"])), **E("401")}, SERVICE)},
    "/api/v1/webhooks/stripe": {"post": op("Stripe webhook (Stripe-Signature over the raw body)",
                                           {**ok(obj({"received": B}, ["received"])), **E("400", "503")}, PUBLIC,
                                           body(obj({"id": S, "type": S, "data": {"type": "object"}}, ["id", "type"])),
                                           [header("Stripe-Signature", True)])},
}
credits_doc = document(
    "mana-credits", "Prepaid credits (1 credit = 1 cent), gift codes, Stripe purchases and the Cloud Sync subscription.", 3061,
    credits_paths, {"Error": credits_error, "Transaction": transaction, "Balance": balance, "Package": package,
                    "Purchase": purchase, "SyncStatus": sync_status, "GiftPublic": gift_public, "GiftOwner": gift_owner,
                    "ReceivedGift": received_gift, "AdminRefusal": admin_refusal, "UseAnswer": use_answer}, "Error")

for service, doc in (("ManaSync", sync_doc), ("ManaCredits", credits_doc)):
    # The one copy: the executable ships and serves it; docs/openapi/<name>.json links to it.
    path = os.path.join(ROOT, "Sources", service, "OpenAPI", "openapi.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)}: {sum(len(v) for v in doc['paths'].values())} operations")
