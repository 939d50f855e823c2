-- flight_network: airlines, airports, aircraft types and scheduled flights for one spring week
PRAGMA foreign_keys = ON;

CREATE TABLE airline (
    airline_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    country TEXT,
    founded_year INTEGER,
    fleet_size INTEGER
);

CREATE TABLE airport (
    airport_code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    city TEXT NOT NULL,
    country TEXT NOT NULL,
    elevation_m INTEGER,
    runways INTEGER
);

CREATE TABLE aircraft (
    aircraft_id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    manufacturer TEXT NOT NULL,
    seats INTEGER,
    range_km INTEGER,
    cruise_speed_kmh REAL
);

CREATE TABLE flight (
    flight_id INTEGER PRIMARY KEY,
    flight_number TEXT NOT NULL,
    airline_id INTEGER NOT NULL,
    origin_code TEXT NOT NULL,
    destination_code TEXT NOT NULL,
    aircraft_id INTEGER,
    departure_date TEXT NOT NULL,
    distance_km INTEGER,
    base_fare REAL,
    status TEXT,
    FOREIGN KEY (airline_id) REFERENCES airline(airline_id),
    FOREIGN KEY (origin_code) REFERENCES airport(airport_code),
    FOREIGN KEY (destination_code) REFERENCES airport(airport_code),
    FOREIGN KEY (aircraft_id) REFERENCES aircraft(aircraft_id)
);

INSERT INTO airline VALUES (1, 'Aurora Air', 'Norway', 1998, 42);
INSERT INTO airline VALUES (2, 'Bluecrest Airways', 'United Kingdom', 1985, 67);
INSERT INTO airline VALUES (3, 'Condor Pacific', 'Chile', 2004, 28);
INSERT INTO airline VALUES (4, 'Sahara Sky', 'Morocco', 2010, 19);
INSERT INTO airline VALUES (5, 'Maple Leaf Express', 'Canada', 1992, 55);
INSERT INTO airline VALUES (6, 'Lotus Wings', 'Thailand', 2007, 33);
INSERT INTO airline VALUES (7, 'Danube Jet', 'Austria', 2015, 12);
INSERT INTO airline VALUES (8, 'Coral Coast Airlines', 'Australia', 1979, 81);
INSERT INTO airline VALUES (9, 'Fjordline Regional', 'Norway', 2019, NULL);

INSERT INTO airport VALUES ('OSL', 'Oslo Gardermoen Airport', 'Oslo', 'Norway', 208, 2);
INSERT INTO airport VALUES ('LHR', 'London Heathrow Airport', 'London', 'United Kingdom', 25, 2);
INSERT INTO airport VALUES ('SCL', 'Arturo Merino Benitez International Airport', 'Santiago', 'Chile', 474, 2);
INSERT INTO airport VALUES ('CMN', 'Mohammed V International Airport', 'Casablanca', 'Morocco', 200, 2);
INSERT INTO airport VALUES ('YYZ', 'Toronto Pearson International Airport', 'Toronto', 'Canada', 173, 5);
INSERT INTO airport VALUES ('BKK', 'Suvarnabhumi Airport', 'Bangkok', 'Thailand', 2, 2);
INSERT INTO airport VALUES ('VIE', 'Vienna International Airport', 'Vienna', 'Austria', 183, 2);
INSERT INTO airport VALUES ('SYD', 'Sydney Kingsford Smith Airport', 'Sydney', 'Australia', 6, 3);
INSERT INTO airport VALUES ('JFK', 'John F. Kennedy International Airport', 'New York', 'United States', 4, 4);
INSERT INTO airport VALUES ('CDG', 'Paris Charles de Gaulle Airport', 'Paris', 'France', 119, 4);
INSERT INTO airport VALUES ('FRA', 'Frankfurt Airport', 'Frankfurt', 'Germany', 111, 4);
INSERT INTO airport VALUES ('NRT', 'Narita International Airport', 'Tokyo', 'Japan', 43, 2);
INSERT INTO airport VALUES ('DXB', 'Dubai International Airport', 'Dubai', 'United Arab Emirates', 19, 2);
INSERT INTO airport VALUES ('MEX', 'Mexico City International Airport', 'Mexico City', 'Mexico', 2230, 2);
INSERT INTO airport VALUES ('KEF', 'Keflavik International Airport', 'Reykjavik', 'Iceland', 52, NULL);
INSERT INTO airport VALUES ('BGO', 'Bergen Flesland Airport', 'Bergen', 'Norway', 50, 1);

INSERT INTO aircraft VALUES (1, 'A320neo', 'Airbus', 186, 6500, 833.0);
INSERT INTO aircraft VALUES (2, 'A350-900', 'Airbus', 315, 15000, 903.0);
INSERT INTO aircraft VALUES (3, '737 MAX 8', 'Boeing', 178, 6570, 839.0);
INSERT INTO aircraft VALUES (4, '787-9', 'Boeing', 296, 14010, 903.5);
INSERT INTO aircraft VALUES (5, 'E195-E2', 'Embraer', 132, 4800, 870.0);
INSERT INTO aircraft VALUES (6, 'ATR 72-600', 'ATR', 70, 1400, 510.0);
INSERT INTO aircraft VALUES (7, 'A330-300', 'Airbus', 300, 11750, 871.0);
INSERT INTO aircraft VALUES (8, '777-300ER', 'Boeing', 396, 13650, 892.0);
INSERT INTO aircraft VALUES (9, 'A220-300', 'Airbus', 145, 6297, 829.0);
INSERT INTO aircraft VALUES (10, 'Dash 8-400', 'De Havilland', 78, 2040, NULL);

INSERT INTO flight VALUES (1, 'AU101', 1, 'OSL', 'LHR', 1, '2024-03-04', 1200, 149.00, 'On Time');
INSERT INTO flight VALUES (2, 'AU102', 1, 'LHR', 'OSL', 1, '2024-03-04', 1200, 155.00, 'On Time');
INSERT INTO flight VALUES (3, 'AU215', 1, 'OSL', 'FRA', 9, '2024-03-05', 1100, 132.50, 'Delayed');
INSERT INTO flight VALUES (4, 'AU318', 1, 'VIE', 'OSL', 9, '2024-03-06', 1370, 141.00, 'On Time');
INSERT INTO flight VALUES (5, 'AU420', 1, 'OSL', 'BGO', 6, '2024-03-07', 305, 79.00, 'Cancelled');
INSERT INTO flight VALUES (6, 'BC001', 2, 'LHR', 'JFK', 8, '2024-03-04', 5540, 612.00, 'On Time');
INSERT INTO flight VALUES (7, 'BC002', 2, 'JFK', 'LHR', 8, '2024-03-05', 5540, 598.00, 'Delayed');
INSERT INTO flight VALUES (8, 'BC310', 2, 'LHR', 'CDG', 1, '2024-03-05', 350, 98.00, 'On Time');
INSERT INTO flight VALUES (9, 'BC311', 2, 'CDG', 'LHR', 1, '2024-03-06', 350, 104.00, 'On Time');
INSERT INTO flight VALUES (10, 'BC540', 2, 'DXB', 'LHR', 4, '2024-03-07', 5470, 689.00, 'On Time');
INSERT INTO flight VALUES (11, 'BC702', 2, 'YYZ', 'LHR', 4, '2024-03-08', 5710, 575.00, 'Delayed');
INSERT INTO flight VALUES (12, 'CP800', 3, 'SCL', 'MEX', 4, '2024-03-04', 6600, 540.00, 'On Time');
INSERT INTO flight VALUES (13, 'CP801', 3, 'MEX', 'SCL', 4, '2024-03-06', 6600, 525.00, 'On Time');
INSERT INTO flight VALUES (14, 'CP900', 3, 'SYD', 'SCL', 2, '2024-03-07', 11350, 1210.00, 'Delayed');
INSERT INTO flight VALUES (15, 'CP650', 3, 'MEX', 'JFK', 3, '2024-03-08', 3360, 310.00, 'On Time');
INSERT INTO flight VALUES (16, 'SS201', 4, 'CMN', 'CDG', 3, '2024-03-04', 1900, 188.00, 'On Time');
INSERT INTO flight VALUES (17, 'SS202', 4, 'CDG', 'CMN', 3, '2024-03-05', 1900, 176.00, 'Cancelled');
INSERT INTO flight VALUES (18, 'SS330', 4, 'CMN', 'DXB', 7, '2024-03-06', 5900, 455.00, 'On Time');
INSERT INTO flight VALUES (19, 'SS331', 4, 'DXB', 'CMN', 7, '2024-03-08', 5900, 470.00, 'Delayed');
INSERT INTO flight VALUES (20, 'ML110', 5, 'YYZ', 'JFK', 5, '2024-03-04', 590, 165.00, 'On Time');
INSERT INTO flight VALUES (21, 'ML111', 5, 'JFK', 'YYZ', 5, '2024-03-04', 590, 172.00, 'Delayed');
INSERT INTO flight VALUES (22, 'ML850', 5, 'YYZ', 'LHR', 7, '2024-03-05', 5710, 560.00, 'On Time');
INSERT INTO flight VALUES (23, 'ML851', 5, 'LHR', 'YYZ', 7, '2024-03-06', 5710, 585.00, 'On Time');
INSERT INTO flight VALUES (24, 'ML212', 5, 'YYZ', 'MEX', 3, '2024-03-07', 3250, 295.00, 'On Time');
INSERT INTO flight VALUES (25, 'ML213', 5, 'MEX', 'YYZ', 3, '2024-03-08', 3250, 289.00, 'Cancelled');
INSERT INTO flight VALUES (26, 'LW400', 6, 'BKK', 'SYD', 2, '2024-03-04', 7530, 720.00, 'On Time');
INSERT INTO flight VALUES (27, 'LW610', 6, 'BKK', 'NRT', 7, '2024-03-05', 4600, 410.00, 'On Time');
INSERT INTO flight VALUES (28, 'LW611', 6, 'NRT', 'BKK', 7, '2024-03-06', 4600, 398.00, 'Delayed');
INSERT INTO flight VALUES (29, 'LW720', 6, 'DXB', 'BKK', 4, '2024-03-07', 4900, 505.00, 'On Time');
INSERT INTO flight VALUES (30, 'LW721', 6, 'BKK', 'DXB', 4, '2024-03-08', 4900, 515.00, 'On Time');
INSERT INTO flight VALUES (31, 'DJ100', 7, 'VIE', 'CDG', 9, '2024-03-04', 1035, 119.00, 'On Time');
INSERT INTO flight VALUES (32, 'DJ101', 7, 'CDG', 'VIE', 9, '2024-03-05', 1035, 124.00, 'On Time');
INSERT INTO flight VALUES (33, 'DJ220', 7, 'FRA', 'VIE', 5, '2024-03-06', 600, 89.00, 'Delayed');
INSERT INTO flight VALUES (34, 'DJ221', 7, 'VIE', 'FRA', 5, '2024-03-07', 600, 92.00, 'On Time');
INSERT INTO flight VALUES (35, 'CC010', 8, 'SYD', 'BKK', 8, '2024-03-04', 7530, 745.00, 'On Time');
INSERT INTO flight VALUES (36, 'CC020', 8, 'SYD', 'NRT', 8, '2024-03-05', 7820, 810.00, 'On Time');
INSERT INTO flight VALUES (37, 'CC021', 8, 'NRT', 'SYD', 8, '2024-03-06', 7820, 795.00, 'Delayed');
INSERT INTO flight VALUES (38, 'CC030', 8, 'SYD', 'SCL', 2, '2024-03-07', 11350, 1185.00, 'On Time');
INSERT INTO flight VALUES (39, 'CC031', 8, 'SCL', 'SYD', 2, '2024-03-08', 11350, 1240.00, 'On Time');
INSERT INTO flight VALUES (40, 'CC044', 8, 'SYD', 'DXB', 8, '2024-03-08', 12040, NULL, 'Cancelled');
INSERT INTO flight VALUES (41, 'BC905', 2, 'LHR', 'DXB', 8, '2024-03-08', 5470, 702.00, 'On Time');
INSERT INTO flight VALUES (42, 'AU516', 1, 'BGO', 'OSL', 6, '2024-03-08', 305, 84.00, 'On Time');
