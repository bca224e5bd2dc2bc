"""Repositories: take a session, query and flush. They never commit; the unit of work does."""

from shop.repositories.events import EventRepository
from shop.repositories.orders import OrderRepository
from shop.repositories.products import ProductRepository
from shop.repositories.tokens import TokenRepository
from shop.repositories.users import UserRepository

__all__ = ["EventRepository", "OrderRepository", "ProductRepository", "TokenRepository", "UserRepository"]
