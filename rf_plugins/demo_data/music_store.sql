-- music_store: an independent record shop with artists, albums, tracks, customers and purchases
PRAGMA foreign_keys = ON;

CREATE TABLE artist (
    artist_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    country TEXT,
    formed_year INTEGER,
    genre TEXT
);

CREATE TABLE album (
    album_id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    artist_id INTEGER NOT NULL,
    release_year INTEGER,
    format TEXT,
    price REAL,
    record_label TEXT,
    FOREIGN KEY (artist_id) REFERENCES artist(artist_id)
);

CREATE TABLE track (
    track_id INTEGER PRIMARY KEY,
    album_id INTEGER NOT NULL,
    track_number INTEGER NOT NULL,
    title TEXT NOT NULL,
    duration_seconds INTEGER,
    FOREIGN KEY (album_id) REFERENCES album(album_id)
);

CREATE TABLE customer (
    customer_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    city TEXT,
    country TEXT,
    signup_date TEXT,
    email TEXT
);

CREATE TABLE purchase (
    purchase_id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    album_id INTEGER NOT NULL,
    purchase_date TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    amount_paid REAL,
    FOREIGN KEY (customer_id) REFERENCES customer(customer_id),
    FOREIGN KEY (album_id) REFERENCES album(album_id)
);

INSERT INTO artist VALUES (1, 'The Velvet Foxes', 'United Kingdom', 2009, 'Indie Rock');
INSERT INTO artist VALUES (2, 'Marisol Vega', 'Mexico', 2014, 'Latin Pop');
INSERT INTO artist VALUES (3, 'Northbound Trio', 'Canada', 1998, 'Jazz');
INSERT INTO artist VALUES (4, 'Kofi Asante', 'Ghana', 2011, 'Afrobeat');
INSERT INTO artist VALUES (5, 'Silver Pines', 'United States', 2016, 'Folk');
INSERT INTO artist VALUES (6, 'Neon Harbor', 'Sweden', 2012, 'Synthpop');
INSERT INTO artist VALUES (7, 'Elena Markova', 'Russia', 2003, 'Classical');
INSERT INTO artist VALUES (8, 'Dust and Thunder', 'Australia', 2005, 'Hard Rock');
INSERT INTO artist VALUES (9, 'June Okada', 'Japan', 2018, 'City Pop');
INSERT INTO artist VALUES (10, 'The Lanterns', 'Ireland', 2001, 'Folk');
INSERT INTO artist VALUES (11, 'Basement Saints', 'United States', 2020, 'Hip Hop');
INSERT INTO artist VALUES (12, 'Clara Lindgren', 'Sweden', 2013, 'Jazz');

INSERT INTO album VALUES (1, 'Paper Moons', 1, 2011, 'Vinyl', 27.99, 'Rough Harbour Records');
INSERT INTO album VALUES (2, 'Static Summer', 1, 2015, 'CD', 13.49, 'Rough Harbour Records');
INSERT INTO album VALUES (3, 'Corazon de Neon', 2, 2017, 'CD', 12.99, 'Sol Naciente');
INSERT INTO album VALUES (4, 'Marea Alta', 2, 2021, 'Vinyl', 29.50, 'Sol Naciente');
INSERT INTO album VALUES (5, 'Late Trains', 3, 2002, 'CD', 11.25, 'Bluebird Jazz');
INSERT INTO album VALUES (6, 'Winter Standards', 3, 2010, 'Vinyl', 31.00, 'Bluebird Jazz');
INSERT INTO album VALUES (7, 'Accra Sunrise', 4, 2013, 'CD', 14.20, 'Gold Coast Sound');
INSERT INTO album VALUES (8, 'Highlife Machine', 4, 2019, 'Vinyl', 26.40, 'Gold Coast Sound');
INSERT INTO album VALUES (9, 'Cedar Smoke', 5, 2018, 'Vinyl', 24.75, NULL);
INSERT INTO album VALUES (10, 'Small Town Radio', 5, 2022, 'Cassette', 9.99, NULL);
INSERT INTO album VALUES (11, 'Electric Fjord', 6, 2014, 'CD', 12.49, 'Polar Pulse');
INSERT INTO album VALUES (12, 'Nightshift Romance', 6, 2020, 'Vinyl', 28.20, 'Polar Pulse');
INSERT INTO album VALUES (13, 'Chopin Reimagined', 7, 2008, 'CD', 16.80, 'Aria Classics');
INSERT INTO album VALUES (14, 'Red Dust Highway', 8, 2007, 'CD', 10.50, 'Outback Noise');
INSERT INTO album VALUES (15, 'Thunder Live in Perth', 8, 2012, 'Vinyl', 34.99, 'Outback Noise');
INSERT INTO album VALUES (16, 'Tokyo Afterglow', 9, 2021, 'Vinyl', 33.40, 'Shibuya Wave');
INSERT INTO album VALUES (17, 'Harbour Songs', 10, 2004, 'CD', 11.90, 'Emerald Isle Music');
INSERT INTO album VALUES (18, 'Concrete Gospel', 11, 2023, 'Cassette', 8.75, NULL);

INSERT INTO track VALUES (1, 1, 1, 'Paper Moons', 221);
INSERT INTO track VALUES (2, 1, 2, 'Foxglove', 198);
INSERT INTO track VALUES (3, 1, 3, 'Northern Line', 254);
INSERT INTO track VALUES (4, 2, 1, 'Static Summer', 187);
INSERT INTO track VALUES (5, 2, 2, 'Neon Bruise', 232);
INSERT INTO track VALUES (6, 3, 1, 'Corazon de Neon', 205);
INSERT INTO track VALUES (7, 3, 2, 'Bailando Sola', 193);
INSERT INTO track VALUES (8, 3, 3, 'Luz de Agosto', 246);
INSERT INTO track VALUES (9, 4, 1, 'Marea Alta', 214);
INSERT INTO track VALUES (10, 4, 2, 'Sal y Arena', 229);
INSERT INTO track VALUES (11, 5, 1, 'Late Trains', 412);
INSERT INTO track VALUES (12, 5, 2, 'Platform Nine', 365);
INSERT INTO track VALUES (13, 6, 1, 'Snowfall Waltz', 338);
INSERT INTO track VALUES (14, 6, 2, 'Midnight at the Station', 451);
INSERT INTO track VALUES (15, 6, 3, 'Frozen Lake Blues', 297);
INSERT INTO track VALUES (16, 7, 1, 'Accra Sunrise', 318);
INSERT INTO track VALUES (17, 7, 2, 'Market Day', 276);
INSERT INTO track VALUES (18, 8, 1, 'Highlife Machine', 342);
INSERT INTO track VALUES (19, 8, 2, 'Palm Wine Groove', 389);
INSERT INTO track VALUES (20, 9, 1, 'Cedar Smoke', 241);
INSERT INTO track VALUES (21, 9, 2, 'River Hymn', 203);
INSERT INTO track VALUES (22, 9, 3, 'Porch Light', 188);
INSERT INTO track VALUES (23, 10, 1, 'Small Town Radio', 176);
INSERT INTO track VALUES (24, 11, 1, 'Electric Fjord', 224);
INSERT INTO track VALUES (25, 11, 2, 'Aurora Drive', 262);
INSERT INTO track VALUES (26, 12, 1, 'Nightshift Romance', 237);
INSERT INTO track VALUES (27, 12, 2, 'Laser Heart', 215);
INSERT INTO track VALUES (28, 13, 1, 'Nocturne in Blue', 305);
INSERT INTO track VALUES (29, 13, 2, 'Prelude for Rain', 184);
INSERT INTO track VALUES (30, 13, 3, 'Ballade Revisited', 527);
INSERT INTO track VALUES (31, 14, 1, 'Red Dust Highway', 268);
INSERT INTO track VALUES (32, 14, 2, 'Engine Heart', 239);
INSERT INTO track VALUES (33, 15, 1, 'Thunder Road Opener', 296);
INSERT INTO track VALUES (34, 15, 2, 'Outback Anthem', 372);
INSERT INTO track VALUES (35, 16, 1, 'Tokyo Afterglow', 258);
INSERT INTO track VALUES (36, 16, 2, 'Neon Rain', 247);
INSERT INTO track VALUES (37, 17, 1, 'Harbour Songs', 213);
INSERT INTO track VALUES (38, 17, 2, 'The Fisherman''s Wife', 281);
INSERT INTO track VALUES (39, 18, 1, 'Concrete Gospel', 201);
INSERT INTO track VALUES (40, 18, 2, 'Subway Sermon', 166);

INSERT INTO customer VALUES (1, 'Hannah Becker', 'Berlin', 'Germany', '2019-05-14', 'hannah.becker@inbox.de');
INSERT INTO customer VALUES (2, 'Tom Whitaker', 'Manchester', 'United Kingdom', '2020-02-03', 'tomw@fastmail.co.uk');
INSERT INTO customer VALUES (3, 'Lucia Romero', 'Madrid', 'Spain', '2018-11-21', NULL);
INSERT INTO customer VALUES (4, 'Kenji Mori', 'Osaka', 'Japan', '2021-07-08', 'kmori@mailjp.com');
INSERT INTO customer VALUES (5, 'Ines Carvalho', 'Lisbon', 'Portugal', '2022-01-19', 'ines.carvalho@correio.pt');
INSERT INTO customer VALUES (6, 'Daniel Brooks', 'Chicago', 'United States', '2017-09-30', 'dbrooks@mail.com');
INSERT INTO customer VALUES (7, 'Freya Nilsson', 'Stockholm', 'Sweden', '2020-06-12', 'freya.n@post.se');
INSERT INTO customer VALUES (8, 'Ahmed Saleh', 'Manchester', 'United Kingdom', '2023-03-05', NULL);
INSERT INTO customer VALUES (9, 'Chiara Ricci', 'Milan', 'Italy', '2019-10-27', 'chiara.ricci@posta.it');
INSERT INTO customer VALUES (10, 'Oscar Lindberg', 'Stockholm', 'Sweden', '2021-12-02', 'oscar.l@post.se');
INSERT INTO customer VALUES (11, 'Maria Gonzalez', 'Chicago', 'United States', '2022-08-16', 'mgonzalez@mail.com');
INSERT INTO customer VALUES (12, 'Ben Carter', 'Austin', 'United States', '2024-01-09', NULL);

INSERT INTO purchase VALUES (1, 1, 1, '2023-01-07', 1, 27.99);
INSERT INTO purchase VALUES (2, 2, 15, '2023-01-14', 1, 34.99);
INSERT INTO purchase VALUES (3, 3, 3, '2023-01-21', 2, 25.98);
INSERT INTO purchase VALUES (4, 4, 16, '2023-02-02', 1, 33.40);
INSERT INTO purchase VALUES (5, 6, 6, '2023-02-11', 1, 31.00);
INSERT INTO purchase VALUES (6, 7, 11, '2023-02-18', 1, 12.49);
INSERT INTO purchase VALUES (7, 1, 13, '2023-03-04', 1, 16.80);
INSERT INTO purchase VALUES (8, 9, 4, '2023-03-15', 1, 29.50);
INSERT INTO purchase VALUES (9, 5, 7, '2023-03-22', 1, 14.20);
INSERT INTO purchase VALUES (10, 2, 2, '2023-04-01', 1, 13.49);
INSERT INTO purchase VALUES (11, 10, 12, '2023-04-09', 1, 28.20);
INSERT INTO purchase VALUES (12, 6, 5, '2023-04-17', 2, 22.50);
INSERT INTO purchase VALUES (13, 11, 3, '2023-05-06', 1, 12.99);
INSERT INTO purchase VALUES (14, 3, 4, '2023-05-19', 1, 29.50);
INSERT INTO purchase VALUES (15, 4, 9, '2023-06-02', 1, 24.75);
INSERT INTO purchase VALUES (16, 7, 12, '2023-06-13', 1, 28.20);
INSERT INTO purchase VALUES (17, 1, 8, '2023-06-24', 1, 26.40);
INSERT INTO purchase VALUES (18, 8, 14, '2023-07-08', 3, 31.50);
INSERT INTO purchase VALUES (19, 9, 13, '2023-07-19', 1, 16.80);
INSERT INTO purchase VALUES (20, 6, 17, '2023-08-01', 1, 11.90);
INSERT INTO purchase VALUES (21, 2, 1, '2023-08-12', 1, 27.99);
INSERT INTO purchase VALUES (22, 5, 8, '2023-08-26', 1, 26.40);
INSERT INTO purchase VALUES (23, 10, 11, '2023-09-09', 2, 24.98);
INSERT INTO purchase VALUES (24, 11, 10, '2023-09-23', 1, 9.99);
INSERT INTO purchase VALUES (25, 3, 7, '2023-10-05', 1, 14.20);
INSERT INTO purchase VALUES (26, 6, 6, '2023-10-18', 1, 31.00);
INSERT INTO purchase VALUES (27, 4, 16, '2023-11-02', 2, 66.80);
INSERT INTO purchase VALUES (28, 1, 9, '2023-11-15', 1, 24.75);
INSERT INTO purchase VALUES (29, 7, 6, '2023-11-29', 1, 31.00);
INSERT INTO purchase VALUES (30, 9, 1, '2023-12-08', 1, 27.99);
INSERT INTO purchase VALUES (31, 2, 15, '2023-12-16', 1, 34.99);
INSERT INTO purchase VALUES (32, 6, 10, '2023-12-21', 2, 19.98);
INSERT INTO purchase VALUES (33, 8, 18, '2024-01-06', 1, 8.75);
INSERT INTO purchase VALUES (34, 10, 16, '2024-01-20', 1, 33.40);
INSERT INTO purchase VALUES (35, 5, 3, '2024-02-03', 1, 12.99);
INSERT INTO purchase VALUES (36, 1, 4, '2024-02-17', 1, 29.50);
INSERT INTO purchase VALUES (37, 11, 18, '2024-03-02', 1, 8.75);
INSERT INTO purchase VALUES (38, 3, 9, '2024-03-16', 1, 24.75);
INSERT INTO purchase VALUES (39, 4, 5, '2024-03-30', 1, 11.25);
INSERT INTO purchase VALUES (40, 6, 15, '2024-04-13', 1, 34.99);
INSERT INTO purchase VALUES (41, 7, 16, '2024-04-20', 1, 33.40);
