"""Jobs of the orders app: found by the taskqueue app's autodiscovery (``<app>.tasks``)."""

from orders.models import Order
from taskqueue import task


@task(queue="orders", max_attempts=5)
def confirm_order(order_id: int) -> str:
    """Runs in a worker process with the ORM set up. The order exists: the job was enqueued
    with the transaction that created it."""
    order = Order.objects.get(id=order_id)
    order.status = "confirmed"
    order.save(update_fields=["status"])
    return f"order {order_id} confirmed"
