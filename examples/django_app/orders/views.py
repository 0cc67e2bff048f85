import json

from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from orders.models import Order
from orders.tasks import confirm_order
from taskqueue.contrib.django import delay_on_commit, get_manager


class PaymentDeclined(Exception):
    pass


@require_POST
def create_order(request: HttpRequest) -> JsonResponse:
    """Create an order and enqueue its confirmation in the same transaction: if anything
    after the enqueue fails, neither the order nor the job exists."""
    data = json.loads(request.body)
    job_id = None
    try:
        with transaction.atomic():
            order = Order.objects.create(email=data["email"], cents=data["cents"])
            job_id = delay_on_commit(confirm_order, order.id)
            probe = _visibility(job_id) if data.get("probe") else {}
            if data.get("decline"):
                raise PaymentDeclined("card declined")
    except PaymentDeclined as exc:
        return JsonResponse({"error": str(exc), "job_id": job_id}, status=402)
    return JsonResponse({"order": order.id, "job_id": job_id, **probe}, status=201)


def _visibility(job_id: str) -> dict[str, bool]:
    """Where the not-yet-committed job can be seen (to show the same-database guarantee)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM job_queue WHERE id = %s", [job_id])
        inside = cursor.fetchone()[0] == 1
    return {"visible_in_transaction": inside,
            "visible_to_others_before_commit": get_manager().get(job_id) is not None}


@require_GET
def order(request: HttpRequest, order_id: int) -> JsonResponse:
    found = Order.objects.filter(id=order_id).values("id", "email", "cents", "status").first()
    return JsonResponse(found or {"error": "no such order"}, status=200 if found else 404)


@require_GET
def job(request: HttpRequest, job_id: str) -> JsonResponse:
    record = get_manager().get(job_id)
    if record is None:
        return JsonResponse({"error": "no such job"}, status=404)
    return JsonResponse({"id": record.id, "state": record.state.value})
