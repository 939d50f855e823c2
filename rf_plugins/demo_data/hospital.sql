-- hospital: departments, doctors, patients, appointments, medications and prescriptions
PRAGMA foreign_keys = ON;

CREATE TABLE department (
    department_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    floor INTEGER,
    annual_budget REAL,
    phone_extension TEXT
);

CREATE TABLE doctor (
    doctor_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    specialty TEXT NOT NULL,
    department_id INTEGER NOT NULL,
    hire_date TEXT,
    consultation_fee REAL,
    FOREIGN KEY (department_id) REFERENCES department(department_id)
);

CREATE TABLE patient (
    patient_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    birth_date TEXT,
    gender TEXT,
    city TEXT,
    insurance_provider TEXT
);

CREATE TABLE appointment (
    appointment_id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL,
    doctor_id INTEGER NOT NULL,
    appointment_date TEXT NOT NULL,
    reason TEXT,
    status TEXT,
    FOREIGN KEY (patient_id) REFERENCES patient(patient_id),
    FOREIGN KEY (doctor_id) REFERENCES doctor(doctor_id)
);

CREATE TABLE medication (
    medication_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT,
    unit_price REAL,
    requires_prescription INTEGER
);

CREATE TABLE prescription (
    prescription_id INTEGER PRIMARY KEY,
    appointment_id INTEGER NOT NULL,
    medication_id INTEGER NOT NULL,
    dosage TEXT,
    duration_days INTEGER,
    FOREIGN KEY (appointment_id) REFERENCES appointment(appointment_id),
    FOREIGN KEY (medication_id) REFERENCES medication(medication_id)
);

INSERT INTO department VALUES (1, 'Cardiology', 3, 2450000.0, 'x3100');
INSERT INTO department VALUES (2, 'Pediatrics', 2, 1380000.0, 'x2200');
INSERT INTO department VALUES (3, 'Orthopedics', 4, 1925000.0, 'x4150');
INSERT INTO department VALUES (4, 'Neurology', 5, 2110000.0, 'x5020');
INSERT INTO department VALUES (5, 'Dermatology', 2, 640000.0, NULL);
INSERT INTO department VALUES (6, 'Emergency Medicine', 1, 3275000.0, 'x1000');
INSERT INTO department VALUES (7, 'Oncology', 6, 2890000.0, 'x6300');
INSERT INTO department VALUES (8, 'Psychiatry', 5, 905000.0, 'x5400');

INSERT INTO doctor VALUES (1, 'Dr. Eleanor Hayes', 'Interventional Cardiology', 1, '2008-04-01', 220.0);
INSERT INTO doctor VALUES (2, 'Dr. Rajesh Iyer', 'Electrophysiology', 1, '2014-09-15', 195.0);
INSERT INTO doctor VALUES (3, 'Dr. Hannah Weiss', 'General Pediatrics', 2, '2011-01-10', 120.0);
INSERT INTO doctor VALUES (4, 'Dr. Kwame Mensah', 'Neonatology', 2, '2017-06-05', 150.0);
INSERT INTO doctor VALUES (5, 'Dr. Lars Eriksen', 'Sports Medicine', 3, '2010-03-22', 175.0);
INSERT INTO doctor VALUES (6, 'Dr. Beatriz Moreno', 'Joint Replacement', 3, '2005-11-07', 240.0);
INSERT INTO doctor VALUES (7, 'Dr. Stephen Clarke', 'Neurology', 4, '2012-07-30', 210.0);
INSERT INTO doctor VALUES (8, 'Dr. Mei Lin', 'Epilepsy', 4, '2019-02-18', 185.0);
INSERT INTO doctor VALUES (9, 'Dr. Fatima Al-Sayed', 'Dermatology', 5, '2016-10-03', 140.0);
INSERT INTO doctor VALUES (10, 'Dr. Patrick Doyle', 'Emergency Medicine', 6, '2009-05-12', 160.0);
INSERT INTO doctor VALUES (11, 'Dr. Anika Sharma', 'Emergency Medicine', 6, '2021-08-23', 145.0);
INSERT INTO doctor VALUES (12, 'Dr. Gabriel Costa', 'Medical Oncology', 7, '2007-02-26', 260.0);
INSERT INTO doctor VALUES (13, 'Dr. Yara Haddad', 'Psychiatry', 8, '2018-12-03', 170.0);
INSERT INTO doctor VALUES (14, 'Dr. Oliver Grant', 'Pediatric Cardiology', 1, '2022-03-14', 205.0);

INSERT INTO patient VALUES (1, 'Martha Jennings', '1956-03-14', 'F', 'Springfield', 'Medicare');
INSERT INTO patient VALUES (2, 'Robert Chen', '1971-08-02', 'M', 'Springfield', 'BlueShield');
INSERT INTO patient VALUES (3, 'Aisha Bello', '1988-12-20', 'F', 'Fairview', 'Unity Health');
INSERT INTO patient VALUES (4, 'Diego Alvarez', '2015-06-09', 'M', 'Springfield', 'BlueShield');
INSERT INTO patient VALUES (5, 'Sarah Goldberg', '1993-01-27', 'F', 'Greenwood', NULL);
INSERT INTO patient VALUES (6, 'Tobias Berg', '1949-10-05', 'M', 'Fairview', 'Medicare');
INSERT INTO patient VALUES (7, 'Leila Nasser', '2019-04-16', 'F', 'Greenwood', 'Unity Health');
INSERT INTO patient VALUES (8, 'Kevin O''Neill', '1982-07-11', 'M', 'Springfield', 'CareFirst');
INSERT INTO patient VALUES (9, 'Yuna Takahashi', '2001-09-23', 'F', 'Fairview', 'BlueShield');
INSERT INTO patient VALUES (10, 'Marcus Reed', '1965-02-28', 'M', 'Lakeside', 'CareFirst');
INSERT INTO patient VALUES (11, 'Olivia Hart', '1977-05-30', 'F', 'Lakeside', 'Unity Health');
INSERT INTO patient VALUES (12, 'Samir Qureshi', '1959-11-19', 'M', 'Greenwood', 'Medicare');
INSERT INTO patient VALUES (13, 'Emily Foster', '2010-08-04', 'F', 'Springfield', 'CareFirst');
INSERT INTO patient VALUES (14, 'Victor Popescu', '1990-03-08', 'M', 'Lakeside', NULL);
INSERT INTO patient VALUES (15, 'Grace Adebayo', '1968-06-17', 'F', 'Fairview', 'BlueShield');
INSERT INTO patient VALUES (16, 'Henry Walsh', '1944-12-01', 'M', 'Springfield', 'Medicare');
INSERT INTO patient VALUES (17, 'Julia Santos', '1999-10-13', 'F', 'Greenwood', 'Unity Health');
INSERT INTO patient VALUES (18, 'Noah Fischer', '2021-01-29', 'M', 'Lakeside', 'BlueShield');
INSERT INTO patient VALUES (19, 'Irene Kowalczyk', '1985-04-22', 'F', 'Greenwood', 'CareFirst');
INSERT INTO patient VALUES (20, 'Paul Martin', '1974-09-03', 'M', 'Springfield', NULL);

INSERT INTO appointment VALUES (1, 1, 1, '2024-01-08', 'Chest pain', 'Completed');
INSERT INTO appointment VALUES (2, 2, 2, '2024-01-09', 'Irregular heartbeat', 'Completed');
INSERT INTO appointment VALUES (3, 4, 3, '2024-01-10', 'Annual checkup', 'Completed');
INSERT INTO appointment VALUES (4, 6, 6, '2024-01-12', 'Knee pain', 'Completed');
INSERT INTO appointment VALUES (5, 3, 9, '2024-01-15', 'Skin rash', 'Completed');
INSERT INTO appointment VALUES (6, 10, 1, '2024-01-17', 'Shortness of breath', 'Completed');
INSERT INTO appointment VALUES (7, 8, 5, '2024-01-18', 'Ankle sprain', 'Completed');
INSERT INTO appointment VALUES (8, 12, 7, '2024-01-22', 'Migraine', 'Completed');
INSERT INTO appointment VALUES (9, 7, 3, '2024-01-24', 'Fever', 'Completed');
INSERT INTO appointment VALUES (10, 15, 12, '2024-01-26', 'Follow-up scan review', 'Completed');
INSERT INTO appointment VALUES (11, 9, 8, '2024-01-29', 'Seizure evaluation', 'Completed');
INSERT INTO appointment VALUES (12, 16, 6, '2024-02-01', 'Hip pain', 'Completed');
INSERT INTO appointment VALUES (13, 5, 13, '2024-02-02', 'Anxiety', 'Completed');
INSERT INTO appointment VALUES (14, 11, 10, '2024-02-05', 'Laceration', 'Completed');
INSERT INTO appointment VALUES (15, 13, 14, '2024-02-06', 'Heart murmur', 'Completed');
INSERT INTO appointment VALUES (16, 1, 1, '2024-02-07', 'Follow-up', 'Completed');
INSERT INTO appointment VALUES (17, 14, 11, '2024-02-09', 'Allergic reaction', 'Completed');
INSERT INTO appointment VALUES (18, 2, 7, '2024-02-12', 'Dizziness', 'Completed');
INSERT INTO appointment VALUES (19, 17, 9, '2024-02-13', 'Acne', 'Completed');
INSERT INTO appointment VALUES (20, 18, 4, '2024-02-14', 'Breathing difficulty', 'Completed');
INSERT INTO appointment VALUES (21, 6, 2, '2024-02-16', 'Palpitations', 'Cancelled');
INSERT INTO appointment VALUES (22, 10, 12, '2024-02-19', 'Biopsy results', 'Completed');
INSERT INTO appointment VALUES (23, 3, 13, '2024-02-20', 'Insomnia', 'Completed');
INSERT INTO appointment VALUES (24, 12, 1, '2024-02-22', 'Chest pain', 'Completed');
INSERT INTO appointment VALUES (25, 8, 10, '2024-02-23', 'Broken wrist', 'Completed');
INSERT INTO appointment VALUES (26, 4, 3, '2024-02-26', 'Ear infection', 'Completed');
INSERT INTO appointment VALUES (27, 15, 12, '2024-02-28', 'Chemotherapy session', 'Completed');
INSERT INTO appointment VALUES (28, 9, 8, '2024-03-01', 'Medication review', 'No-show');
INSERT INTO appointment VALUES (29, 16, 5, '2024-03-04', 'Physical therapy referral', 'Completed');
INSERT INTO appointment VALUES (30, 5, 9, '2024-03-05', 'Mole check', 'Completed');
INSERT INTO appointment VALUES (31, 11, 7, '2024-03-07', 'Numbness in hand', 'Completed');
INSERT INTO appointment VALUES (32, 7, 4, '2024-03-08', 'Cough', 'Completed');
INSERT INTO appointment VALUES (33, 1, 2, '2024-03-11', 'Pacemaker check', 'Scheduled');
INSERT INTO appointment VALUES (34, 12, 12, '2024-03-12', 'Oncology consult', 'Scheduled');
INSERT INTO appointment VALUES (35, 14, 5, '2024-03-13', 'Shoulder injury', 'Scheduled');
INSERT INTO appointment VALUES (36, 2, 1, '2024-03-14', 'Stress test', 'Scheduled');
INSERT INTO appointment VALUES (37, 17, 13, '2024-03-15', 'Depression follow-up', 'Scheduled');
INSERT INTO appointment VALUES (38, 10, 10, '2024-03-18', 'Burn', 'Scheduled');

INSERT INTO medication VALUES (1, 'Atorvastatin', 'Statin', 0.85, 1);
INSERT INTO medication VALUES (2, 'Metoprolol', 'Beta blocker', 0.62, 1);
INSERT INTO medication VALUES (3, 'Amoxicillin', 'Antibiotic', 0.45, 1);
INSERT INTO medication VALUES (4, 'Ibuprofen', 'Analgesic', 0.12, 0);
INSERT INTO medication VALUES (5, 'Sumatriptan', 'Antimigraine', 3.40, 1);
INSERT INTO medication VALUES (6, 'Hydrocortisone cream', 'Corticosteroid', 0.95, 0);
INSERT INTO medication VALUES (7, 'Levetiracetam', 'Anticonvulsant', 1.75, 1);
INSERT INTO medication VALUES (8, 'Sertraline', 'Antidepressant', 0.58, 1);
INSERT INTO medication VALUES (9, 'Cetirizine', 'Antihistamine', 0.20, 0);
INSERT INTO medication VALUES (10, 'Ondansetron', 'Antiemetic', 2.10, 1);
INSERT INTO medication VALUES (11, 'Apixaban', 'Anticoagulant', 5.25, 1);
INSERT INTO medication VALUES (12, 'Paracetamol', 'Analgesic', 0.08, 0);
INSERT INTO medication VALUES (13, 'Tretinoin gel', 'Retinoid', 4.60, 1);
INSERT INTO medication VALUES (14, 'Zolpidem', 'Sedative', 1.30, 1);
INSERT INTO medication VALUES (15, 'Salbutamol inhaler', 'Bronchodilator', 12.50, 1);
INSERT INTO medication VALUES (16, 'Omeprazole', 'Proton pump inhibitor', 0.40, 0);
INSERT INTO medication VALUES (17, 'Loratadine', 'Antihistamine', 0.30, 0);
INSERT INTO medication VALUES (18, 'Prednisone', 'Corticosteroid', 0.35, 1);

INSERT INTO prescription VALUES (1, 1, 1, '20 mg once daily', 90);
INSERT INTO prescription VALUES (2, 1, 2, '50 mg twice daily', 90);
INSERT INTO prescription VALUES (3, 2, 11, '5 mg twice daily', 60);
INSERT INTO prescription VALUES (4, 2, 2, '25 mg twice daily', 60);
INSERT INTO prescription VALUES (5, 3, 12, '250 mg as needed', 5);
INSERT INTO prescription VALUES (6, 4, 4, '400 mg three times daily', 14);
INSERT INTO prescription VALUES (7, 5, 6, 'Apply twice daily', 10);
INSERT INTO prescription VALUES (8, 5, 9, '10 mg once daily', 14);
INSERT INTO prescription VALUES (9, 6, 1, '40 mg once daily', 90);
INSERT INTO prescription VALUES (10, 7, 4, '400 mg as needed', 7);
INSERT INTO prescription VALUES (11, 8, 5, '50 mg at onset', 30);
INSERT INTO prescription VALUES (12, 9, 12, '160 mg every 6 hours', 3);
INSERT INTO prescription VALUES (13, 9, 3, '250 mg three times daily', 7);
INSERT INTO prescription VALUES (14, 10, 10, '8 mg before treatment', 5);
INSERT INTO prescription VALUES (15, 11, 7, '500 mg twice daily', 60);
INSERT INTO prescription VALUES (16, 12, 4, '600 mg twice daily', 10);
INSERT INTO prescription VALUES (17, 12, 16, '20 mg once daily', 10);
INSERT INTO prescription VALUES (18, 13, 8, '50 mg once daily', 30);
INSERT INTO prescription VALUES (19, 14, 3, '500 mg three times daily', 7);
INSERT INTO prescription VALUES (20, 17, 9, '10 mg once daily', 7);
INSERT INTO prescription VALUES (21, 19, 13, 'Apply nightly', 60);
INSERT INTO prescription VALUES (22, 20, 15, '2 puffs as needed', 30);
INSERT INTO prescription VALUES (23, 22, 10, '8 mg as needed', 10);
INSERT INTO prescription VALUES (24, 23, 14, '5 mg at bedtime', 14);
INSERT INTO prescription VALUES (25, 24, 11, '5 mg twice daily', 90);
INSERT INTO prescription VALUES (26, 25, 12, '500 mg every 6 hours', 5);
INSERT INTO prescription VALUES (27, 26, 3, '250 mg twice daily', 10);
INSERT INTO prescription VALUES (28, 27, 10, '8 mg before treatment', 5);
INSERT INTO prescription VALUES (29, 29, 4, '400 mg as needed', 14);
INSERT INTO prescription VALUES (30, 31, 12, '500 mg as needed', 7);
INSERT INTO prescription VALUES (31, 32, 15, '1 puff as needed', 30);
INSERT INTO prescription VALUES (32, 24, 1, '80 mg once daily', 90);
