-- 0008_termination: reserved; filled by its feature.
SELECT 1;
