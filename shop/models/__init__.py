"""Typed models, one module per aggregate. Importing this package registers every table on Base.metadata."""

from shop.models.base import Base
from shop.models.catalog_change import CatalogChange
from shop.models.delivery import WebhookAttempt, WebhookCursor, WebhookDelivery
from shop.models.event import Event, EventType, ResourceType
from shop.models.idempotency import IdempotencyRecord
from shop.models.money import (
    Flag,
    LedgerEntry,
    LedgerKind,
    NotificationKind,
    NotificationOutcome,
    PaymentNotification,
    Refund,
    RefundLine,
    RefundStatus,
)
from shop.models.order import Order, OrderItem, OrderStatus
from shop.models.order_history import OrderStatusChange
from shop.models.product import Product
from shop.models.returns import Return, ReturnLine, ReturnStatus
from shop.models.summary import (
    CategorySummary,
    CategorySummaryChange,
    CustomerRevenue,
    FirstOrderSummary,
    FirstOrderSummaryChange,
    OrderPairSummary,
    OrderPairSummaryChange,
    ProductSummary,
    ProductSummaryChange,
    RevenueSummary,
    RevenueSummaryChange,
)
from shop.models.token import ApiToken
from shop.models.user import Role, User
from shop.models.webhook import WebhookEndpoint

__all__ = [
    "ApiToken",
    "Base",
    "CatalogChange",
    "CategorySummary",
    "CategorySummaryChange",
    "CustomerRevenue",
    "Event",
    "EventType",
    "FirstOrderSummary",
    "FirstOrderSummaryChange",
    "Flag",
    "IdempotencyRecord",
    "LedgerEntry",
    "LedgerKind",
    "NotificationKind",
    "NotificationOutcome",
    "Order",
    "OrderItem",
    "OrderPairSummary",
    "OrderPairSummaryChange",
    "OrderStatus",
    "OrderStatusChange",
    "PaymentNotification",
    "Product",
    "ProductSummary",
    "ProductSummaryChange",
    "Refund",
    "RefundLine",
    "RefundStatus",
    "ResourceType",
    "Return",
    "ReturnLine",
    "ReturnStatus",
    "RevenueSummary",
    "RevenueSummaryChange",
    "Role",
    "User",
    "WebhookAttempt",
    "WebhookCursor",
    "WebhookDelivery",
    "WebhookEndpoint",
]
