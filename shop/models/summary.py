"""The report summaries (migration 0016): counted orders, lines and refunds added up by UTC quarter hour ('q'), day
('d') and month ('m'), and the changes the order tables' triggers append to them, which shop/reports/summaries.py
folds in. Written by triggers and the roll-up only; read by the reports."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shop.models.base import Base

# a day's or a month's figures can run past Money's ten digits before the point
SummedMoney = sa.Numeric(14, 2, asdecimal=True)


def _money() -> Mapped[Decimal]:
    return mapped_column(SummedMoney)


def _count() -> Mapped[int]:
    return mapped_column(sa.BigInteger)


class RevenueSummary(Base):
    __tablename__ = "revenue_summary"

    grain: Mapped[str] = mapped_column(sa.CHAR(1), primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(primary_key=True)
    orders: Mapped[int] = _count()
    units: Mapped[int] = _count()
    revenue: Mapped[Decimal] = _money()
    refunds: Mapped[Decimal] = _money()
    first_orders: Mapped[int] = _count()  # customers' first counted orders


class RevenueSummaryChange(Base):
    __tablename__ = "revenue_summary_changes"
    __table_args__ = (sa.Index("ix_revenue_summary_changes_starts_at", "starts_at"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    starts_at: Mapped[datetime]
    orders: Mapped[int] = _count()
    units: Mapped[int] = _count()
    revenue: Mapped[Decimal] = _money()
    refunds: Mapped[Decimal] = _money()
    first_orders: Mapped[int] = _count()


class CategorySummary(Base):
    __tablename__ = "category_summary"

    grain: Mapped[str] = mapped_column(sa.CHAR(1), primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    orders: Mapped[int] = _count()
    units: Mapped[int] = _count()
    revenue: Mapped[Decimal] = _money()
    refunded_units: Mapped[int] = _count()
    refunds: Mapped[Decimal] = _money()


class CategorySummaryChange(Base):
    __tablename__ = "category_summary_changes"
    __table_args__ = (sa.Index("ix_category_summary_changes_starts_at", "starts_at"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    starts_at: Mapped[datetime]
    category: Mapped[str] = mapped_column(sa.String(100))
    orders: Mapped[int] = _count()
    units: Mapped[int] = _count()
    revenue: Mapped[Decimal] = _money()
    refunded_units: Mapped[int] = _count()
    refunds: Mapped[Decimal] = _money()


class ProductSummary(Base):
    __tablename__ = "product_summary"

    grain: Mapped[str] = mapped_column(sa.CHAR(1), primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    units: Mapped[int] = _count()
    revenue: Mapped[Decimal] = _money()
    refunded_units: Mapped[int] = _count()
    refunds: Mapped[Decimal] = _money()


class ProductSummaryChange(Base):
    __tablename__ = "product_summary_changes"
    __table_args__ = (sa.Index("ix_product_summary_changes_starts_at", "starts_at"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    starts_at: Mapped[datetime]
    product_id: Mapped[int] = mapped_column(sa.BigInteger)
    units: Mapped[int] = _count()
    revenue: Mapped[Decimal] = _money()
    refunded_units: Mapped[int] = _count()
    refunds: Mapped[Decimal] = _money()


class OrderPairSummary(Base):
    """Counted orders that have a previous counted order of their customer, by the UTC day each was placed in."""

    __tablename__ = "order_pair_summary"

    grain: Mapped[str] = mapped_column(sa.CHAR(1), primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(primary_key=True)  # the order's day
    previous_day: Mapped[datetime] = mapped_column(primary_key=True)  # the previous order's day
    pairs: Mapped[int] = _count()


class OrderPairSummaryChange(Base):
    __tablename__ = "order_pair_summary_changes"
    __table_args__ = (sa.Index("ix_order_pair_summary_changes_starts_at", "starts_at"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    starts_at: Mapped[datetime]
    previous_day: Mapped[datetime]
    pairs: Mapped[int] = _count()


class FirstOrderSummary(Base):
    """Counted orders by the UTC day each was placed in and the day their customer's first counted order was."""

    __tablename__ = "first_order_summary"

    grain: Mapped[str] = mapped_column(sa.CHAR(1), primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(primary_key=True)  # the order's day
    first_day: Mapped[datetime] = mapped_column(primary_key=True)  # the customer's first order's day
    orders: Mapped[int] = _count()
    revenue: Mapped[Decimal] = _money()
    # orders after their customer's first, whose previous one was placed at the same moment as it: one a customer
    # who ordered again (their second order, or the first after orders tied with their first)
    second_orders: Mapped[int] = _count()


class FirstOrderSummaryChange(Base):
    __tablename__ = "first_order_summary_changes"
    __table_args__ = (sa.Index("ix_first_order_summary_changes_starts_at", "starts_at"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    starts_at: Mapped[datetime]
    first_day: Mapped[datetime]
    orders: Mapped[int] = _count()
    revenue: Mapped[Decimal] = _money()
    second_orders: Mapped[int] = _count()


class CustomerRevenue(Base):
    """Each customer's counted orders' total ever, kept by the orders' trigger in the writing transaction."""

    __tablename__ = "customer_revenue"
    __table_args__ = (sa.Index("ix_customer_revenue_revenue", sa.text("revenue DESC"), "user_id"),)

    user_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    revenue: Mapped[Decimal] = _money()
