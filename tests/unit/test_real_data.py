"""Real transaction histories: both CSV layouts, the category map, and the development account
(read from ../shared/fincoach-original when it is beside the checkout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fincoach.features.vocab import CATEGORIES
from fincoach.training.real_data import load_history, map_category

DEV_ACCOUNT = (
    Path(__file__).resolve().parents[2].parent
    / "shared/fincoach-original/dataset/anonymized_original_with_category.csv"
)


def test_bank_export_with_debit_and_credit_columns(tmp_path: Path) -> None:
    path = tmp_path / "bank.csv"
    path.write_text(
        "Transaction Number,Transaction Date,Transaction Type,Transaction Description,"
        "Debit Amount,Credit Amount,Balance,Category\n"
        "3,02/01/2022,DEB,TESCO STORES 1234,12.50,,100,Groceries \n"
        "2,01/01/2022,BGC,ACME LTD SALARY,,2000.00,112.5,Paycheck\n"
        "1,01/01/2022,D/D,BIG BANK MTGE,900.00,,-1887.5,Mortgage\n"
        "0,01/01/2022,SO,ISA,100.00,,,Investment\n"
        "9,01/01/2022,DEB,REFUND SHOP,,20.00,,Amazon\n"
    )
    history = load_history(path)
    assert len(history) == 5
    # Newest first in the file; oldest first here, the file's order kept within a day.
    assert history.first_day.isoformat() == "2022-01-01" and history.category[-1] == "groceries"
    by_source = dict(zip(history.merchant, history.category, strict=True))
    assert by_source["BIG BANK MTGE"] == "bills"
    assert by_source["ACME LTD SALARY"] == "income"
    assert by_source["ISA"] == "savings"
    assert by_source["REFUND SHOP"] == "income"  # money in is income whatever its category
    assert str(history.occurred_at[0]).endswith("T12:00:00")


def test_plain_ledger_with_signed_amounts(tmp_path: Path) -> None:
    path = tmp_path / "ledger.csv"
    path.write_text(
        "date,amount,category,description\n"
        "2023-03-01,-45.20,Restaurants,Pizza place\n"
        "2023-03-02,-800,Rent,Landlord\n"
        "2023-03-03,1500,Salary,Employer\n"
        "2023-03-04,-12,Cinema,Film\n"
        "2023-03-05,-7,Something odd,?\n"
    )
    history = load_history(path)
    assert history.category.tolist() == ["dine_out", "bills", "income", "entertainment", "other"]
    assert history.amount.tolist() == [45.2, 800.0, 1500.0, 12.0, 7.0]
    scaled = history.scaled(1 / 90)
    assert np.allclose(scaled.amount * 90, history.amount)


def test_category_map_never_makes_money_out_income() -> None:
    assert map_category("Paycheck", inflow=False) == "other"
    assert map_category("Council Tax", inflow=False) == "bills"
    assert map_category(None, inflow=True) == "income"


@pytest.mark.skipif(not DEV_ACCOUNT.is_file(), reason="development account not beside checkout")
def test_development_account_maps_every_row() -> None:
    history = load_history(DEV_ACCOUNT)
    assert len(history) >= 6566
    assert set(history.category) <= set(CATEGORIES)
    assert history.first_day.year == 2015 and history.last_day.year == 2022
    mortgage = history.source_category == "Mortgage"
    assert mortgage.any() and (history.category[mortgage] == "bills").all()
    income = history.amount[history.category == "income"].sum()
    spent = history.amount[~np.isin(history.category, ("income", "savings"))].sum()
    assert 0 < spent < income  # the account saved (into savings and investments)
