-- 0007_payment_allocation: reserved; filled by its feature.
SELECT 1;
