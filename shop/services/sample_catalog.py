"""A small, deterministic sample catalog for `make run` (the full `flask seed-db` comes with users and orders)."""

from __future__ import annotations

import random
from decimal import Decimal

from faker import Faker

from shop.models import Product
from shop.services.unit_of_work import UnitOfWork

# category -> (lowest, highest) price: a catalog where a toaster does not cost what a novel does
CATEGORY_PRICES: dict[str, tuple[int, int]] = {
    "Books": (5, 60),
    "Electronics": (20, 900),
    "Home & Kitchen": (8, 250),
    "Toys": (5, 120),
    "Sports": (10, 400),
    "Garden": (5, 300),
    "Beauty": (3, 80),
    "Grocery": (1, 40),
}


def load_sample_catalog(product_count: int, seed: int = 42) -> int:
    """Insert `product_count` products unless the catalog has some; return how many were inserted."""
    fake = Faker()
    fake.seed_instance(seed)
    rng = random.Random(seed)
    with UnitOfWork() as uow:
        if uow.products.count() > 0:
            return 0
        categories = list(CATEGORY_PRICES)
        products = []
        for number in range(1, product_count + 1):
            category = categories[number % len(categories)]
            low, high = CATEGORY_PRICES[category]
            cents = rng.randint(low * 100, high * 100)
            products.append(
                Product(
                    sku=f"SKU-{number:06d}",
                    name=fake.catch_phrase()[:200],
                    description=fake.paragraph(nb_sentences=3),
                    category=category,
                    # prices end in .99 or .49, like shop prices do
                    price=Decimal(cents // 100) + Decimal(rng.choice(["0.99", "0.49"])),
                    stock=rng.choice([0, 3, 10, 25, 50, 100, 250]),
                )
            )
        uow.products.add_all(products)
        uow.commit()
    return product_count
