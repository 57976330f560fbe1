-- 0006_credit_notes: reserved; filled by its feature.
SELECT 1;
