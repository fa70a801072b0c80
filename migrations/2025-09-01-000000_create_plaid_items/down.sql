DROP TABLE plaid_items;
