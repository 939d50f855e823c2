-- city_library: a small municipal library network (branches, authors, books, members, loans)
PRAGMA foreign_keys = ON;

CREATE TABLE branch (
    branch_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    city TEXT NOT NULL,
    opened_year INTEGER,
    phone TEXT
);

CREATE TABLE author (
    author_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    nationality TEXT,
    birth_year INTEGER
);

CREATE TABLE book (
    book_id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    author_id INTEGER NOT NULL,
    genre TEXT,
    publish_year INTEGER,
    pages INTEGER,
    price REAL,
    FOREIGN KEY (author_id) REFERENCES author(author_id)
);

CREATE TABLE member (
    member_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    city TEXT,
    join_date TEXT,
    email TEXT,
    home_branch_id INTEGER,
    FOREIGN KEY (home_branch_id) REFERENCES branch(branch_id)
);

CREATE TABLE loan (
    loan_id INTEGER PRIMARY KEY,
    book_id INTEGER NOT NULL,
    member_id INTEGER NOT NULL,
    branch_id INTEGER NOT NULL,
    loan_date TEXT NOT NULL,
    due_date TEXT NOT NULL,
    return_date TEXT,
    fine REAL,
    FOREIGN KEY (book_id) REFERENCES book(book_id),
    FOREIGN KEY (member_id) REFERENCES member(member_id),
    FOREIGN KEY (branch_id) REFERENCES branch(branch_id)
);

INSERT INTO branch VALUES (1, 'Central Library', 'Riverton', 1921, '555-0101');
INSERT INTO branch VALUES (2, 'Eastside Branch', 'Riverton', 1968, '555-0144');
INSERT INTO branch VALUES (3, 'Maple Grove Branch', 'Maple Grove', 1975, '555-0178');
INSERT INTO branch VALUES (4, 'Harbor Point Library', 'Port Ellis', 1989, NULL);
INSERT INTO branch VALUES (5, 'Westfield Branch', 'Riverton', 1994, '555-0192');
INSERT INTO branch VALUES (6, 'Oakdale Community Library', 'Oakdale', 2001, '555-0215');
INSERT INTO branch VALUES (7, 'Lakeview Branch', 'Port Ellis', 2008, '555-0230');
INSERT INTO branch VALUES (8, 'Hillcrest Branch', 'Oakdale', 2015, NULL);

INSERT INTO author VALUES (1, 'Margaret Holloway', 'British', 1948);
INSERT INTO author VALUES (2, 'Tomasz Wrona', 'Polish', 1962);
INSERT INTO author VALUES (3, 'Amara Okafor', 'Nigerian', 1975);
INSERT INTO author VALUES (4, 'Lucia Bermejo', 'Spanish', 1981);
INSERT INTO author VALUES (5, 'Henrik Dahl', 'Norwegian', 1955);
INSERT INTO author VALUES (6, 'Priya Raman', 'Indian', 1979);
INSERT INTO author VALUES (7, 'James Whitcombe', 'British', 1939);
INSERT INTO author VALUES (8, 'Keiko Tanabe', 'Japanese', 1968);
INSERT INTO author VALUES (9, 'Daniel Ferreira', 'Brazilian', 1984);
INSERT INTO author VALUES (10, 'Olivia Marsh', 'American', 1971);
INSERT INTO author VALUES (11, 'Samuel Adeyemi', 'Nigerian', 1990);
INSERT INTO author VALUES (12, 'Ingrid Solberg', 'Norwegian', NULL);
INSERT INTO author VALUES (13, 'Marco Bellini', 'Italian', 1958);
INSERT INTO author VALUES (14, 'Rachel Kim', 'American', 1987);
INSERT INTO author VALUES (15, 'Victor Lemaire', 'French', 1944);
INSERT INTO author VALUES (16, 'Noor Haddad', 'Lebanese', 1992);

INSERT INTO book VALUES (1, 'The Salt Road', 1, 'Historical Fiction', 1989, 412, 18.99);
INSERT INTO book VALUES (2, 'Winter Orchard', 1, 'Fiction', 1995, 298, 14.50);
INSERT INTO book VALUES (3, 'A Map of Quiet Rivers', 1, 'Fiction', 2003, 356, 16.00);
INSERT INTO book VALUES (4, 'Glass Harbour', 2, 'Mystery', 1998, 321, 12.99);
INSERT INTO book VALUES (5, 'The Ninth Witness', 2, 'Mystery', 2005, 388, 13.75);
INSERT INTO book VALUES (6, 'Under the Mango Tree', 3, 'Fiction', 2010, 264, 15.25);
INSERT INTO book VALUES (7, 'Lagos After Rain', 3, 'Fiction', 2016, 302, 17.40);
INSERT INTO book VALUES (8, 'Stars Over Castile', 4, 'Historical Fiction', 2012, 455, 21.00);
INSERT INTO book VALUES (9, 'The Cartographer''s Daughter', 4, 'Historical Fiction', 2019, 498, 24.50);
INSERT INTO book VALUES (10, 'Fjord Light', 5, 'Poetry', 1987, 112, 9.99);
INSERT INTO book VALUES (11, 'Northern Ledger', 5, 'Mystery', 2001, 347, 13.20);
INSERT INTO book VALUES (12, 'Monsoon Mathematics', 6, 'Science', 2014, 276, 28.00);
INSERT INTO book VALUES (13, 'The Hidden Life of Numbers', 6, 'Science', 2018, 310, 26.75);
INSERT INTO book VALUES (14, 'Letters from Dover', 7, 'Biography', 1972, 240, 11.00);
INSERT INTO book VALUES (15, 'The Long Parliament', 7, 'History', 1980, 520, 32.00);
INSERT INTO book VALUES (16, 'Paper Lanterns', 8, 'Fiction', 1999, 228, 12.40);
INSERT INTO book VALUES (17, 'Cooking with Seasons', 8, 'Cookbook', 2008, 190, 22.95);
INSERT INTO book VALUES (18, 'Sao Paulo Nights', 9, 'Thriller', 2015, 365, 14.99);
INSERT INTO book VALUES (19, 'The Last Ferry', 9, 'Thriller', 2021, 341, 16.49);
INSERT INTO book VALUES (20, 'Prairie Hearts', 10, 'Romance', 2002, 280, 9.50);
INSERT INTO book VALUES (21, 'Second Spring', 10, 'Romance', 2009, 296, 10.25);
INSERT INTO book VALUES (22, 'Code of the Savanna', 11, 'Thriller', 2020, 402, 18.00);
INSERT INTO book VALUES (23, 'Snow on the Tracks', 12, 'Mystery', 2011, 315, 12.80);
INSERT INTO book VALUES (24, 'The Venetian Account', 13, 'History', 1994, 468, 29.90);
INSERT INTO book VALUES (25, 'Gardens of Tuscany', 13, 'Travel', 2006, 204, 19.95);
INSERT INTO book VALUES (26, 'Starlight Algorithms', 14, 'Science', 2022, 288, 31.50);
INSERT INTO book VALUES (27, 'Small Kitchens, Big Flavour', 14, 'Cookbook', 2017, 176, 20.00);
INSERT INTO book VALUES (28, 'The Quiet Revolution', 15, 'History', 1976, 390, 27.25);
INSERT INTO book VALUES (29, 'Memoirs of a Baker', 15, 'Biography', 1991, 210, 13.60);
INSERT INTO book VALUES (30, 'Ocean Without End', 2, 'Thriller', 2013, 372, 15.80);
INSERT INTO book VALUES (31, 'Amber Coast', 2, 'Mystery', 2023, 334, 17.25);

INSERT INTO member VALUES (1, 'Alice Brennan', 'Riverton', '2015-03-12', 'alice.brennan@mail.com', 1);
INSERT INTO member VALUES (2, 'Ben Okoro', 'Riverton', '2017-06-30', 'ben.okoro@mail.com', 2);
INSERT INTO member VALUES (3, 'Carla Mendes', 'Maple Grove', '2016-09-05', NULL, 3);
INSERT INTO member VALUES (4, 'David Lindqvist', 'Port Ellis', '2019-01-22', 'dlindqvist@post.net', 4);
INSERT INTO member VALUES (5, 'Emma Chatterjee', 'Riverton', '2020-11-14', 'emma.c@mail.com', 1);
INSERT INTO member VALUES (6, 'Felix Romano', 'Oakdale', '2014-02-08', NULL, 6);
INSERT INTO member VALUES (7, 'Grace Whitfield', 'Port Ellis', '2021-07-19', 'gwhitfield@post.net', 7);
INSERT INTO member VALUES (8, 'Hassan Farouk', 'Riverton', '2018-04-03', 'hfarouk@mail.com', 5);
INSERT INTO member VALUES (9, 'Isabel Navarro', 'Maple Grove', '2022-03-27', 'isabel.n@mail.com', 3);
INSERT INTO member VALUES (10, 'Jonah Pearce', 'Oakdale', '2013-10-11', 'jpearce@post.net', 8);
INSERT INTO member VALUES (11, 'Kira Volkova', 'Riverton', '2023-01-09', NULL, 2);
INSERT INTO member VALUES (12, 'Liam Hartley', 'Port Ellis', '2016-12-01', 'liam.hartley@mail.com', 4);
INSERT INTO member VALUES (13, 'Maya Osei', 'Riverton', '2019-08-15', 'maya.osei@mail.com', 1);
INSERT INTO member VALUES (14, 'Nathan Cole', 'Oakdale', '2020-05-06', NULL, 6);
INSERT INTO member VALUES (15, 'Olga Petrenko', 'Maple Grove', '2015-07-23', 'opetrenko@post.net', 3);
INSERT INTO member VALUES (16, 'Peter Zhang', 'Riverton', '2022-09-30', 'pzhang@mail.com', 5);
INSERT INTO member VALUES (17, 'Quinn Adler', 'Port Ellis', '2018-11-17', NULL, 7);
INSERT INTO member VALUES (18, 'Rosa Delgado', 'Oakdale', '2021-02-25', 'rosa.delgado@mail.com', 8);
INSERT INTO member VALUES (19, 'Simon Ashby', 'Riverton', '2024-01-15', 'sashby@post.net', 1);
INSERT INTO member VALUES (20, 'Tara Nwosu', 'Maple Grove', '2023-06-04', 'tara.nwosu@mail.com', 3);

INSERT INTO loan VALUES (1, 1, 1, 1, '2023-01-05', '2023-01-26', '2023-01-20', 0.0);
INSERT INTO loan VALUES (2, 4, 2, 2, '2023-01-09', '2023-01-30', '2023-02-04', 1.25);
INSERT INTO loan VALUES (3, 12, 5, 1, '2023-01-15', '2023-02-05', '2023-02-01', 0.0);
INSERT INTO loan VALUES (4, 7, 3, 3, '2023-01-22', '2023-02-12', '2023-02-10', 0.0);
INSERT INTO loan VALUES (5, 18, 8, 5, '2023-02-02', '2023-02-23', '2023-03-05', 2.50);
INSERT INTO loan VALUES (6, 9, 4, 4, '2023-02-11', '2023-03-04', '2023-03-01', 0.0);
INSERT INTO loan VALUES (7, 20, 6, 6, '2023-02-14', '2023-03-07', '2023-03-06', 0.0);
INSERT INTO loan VALUES (8, 5, 1, 1, '2023-02-20', '2023-03-13', '2023-03-10', 0.0);
INSERT INTO loan VALUES (9, 26, 13, 1, '2023-03-03', '2023-03-24', '2023-04-07', 3.50);
INSERT INTO loan VALUES (10, 15, 10, 8, '2023-03-08', '2023-03-29', '2023-03-28', 0.0);
INSERT INTO loan VALUES (11, 22, 12, 4, '2023-03-15', '2023-04-05', '2023-04-02', 0.0);
INSERT INTO loan VALUES (12, 3, 15, 3, '2023-03-21', '2023-04-11', '2023-04-11', 0.0);
INSERT INTO loan VALUES (13, 19, 7, 7, '2023-04-02', '2023-04-23', '2023-04-29', 1.50);
INSERT INTO loan VALUES (14, 12, 16, 5, '2023-04-10', '2023-05-01', '2023-04-25', 0.0);
INSERT INTO loan VALUES (15, 8, 9, 3, '2023-04-18', '2023-05-09', '2023-05-20', 2.75);
INSERT INTO loan VALUES (16, 23, 14, 6, '2023-05-01', '2023-05-22', '2023-05-18', 0.0);
INSERT INTO loan VALUES (17, 1, 5, 1, '2023-05-07', '2023-05-28', '2023-05-27', 0.0);
INSERT INTO loan VALUES (18, 30, 2, 2, '2023-05-12', '2023-06-02', '2023-06-01', 0.0);
INSERT INTO loan VALUES (19, 13, 13, 1, '2023-05-25', '2023-06-15', '2023-06-30', 3.75);
INSERT INTO loan VALUES (20, 17, 18, 8, '2023-06-03', '2023-06-24', '2023-06-20', 0.0);
INSERT INTO loan VALUES (21, 6, 3, 3, '2023-06-10', '2023-07-01', '2023-06-28', 0.0);
INSERT INTO loan VALUES (22, 24, 17, 7, '2023-06-18', '2023-07-09', '2023-07-19', 2.50);
INSERT INTO loan VALUES (23, 10, 4, 4, '2023-07-01', '2023-07-22', '2023-07-15', 0.0);
INSERT INTO loan VALUES (24, 18, 1, 1, '2023-07-09', '2023-07-30', '2023-07-29', 0.0);
INSERT INTO loan VALUES (25, 27, 6, 6, '2023-07-16', '2023-08-06', '2023-08-02', 0.0);
INSERT INTO loan VALUES (26, 11, 8, 5, '2023-07-24', '2023-08-14', '2023-08-30', 4.00);
INSERT INTO loan VALUES (27, 2, 15, 3, '2023-08-05', '2023-08-26', '2023-08-21', 0.0);
INSERT INTO loan VALUES (28, 26, 16, 5, '2023-08-13', '2023-09-03', '2023-09-01', 0.0);
INSERT INTO loan VALUES (29, 21, 10, 8, '2023-08-22', '2023-09-12', '2023-09-10', 0.0);
INSERT INTO loan VALUES (30, 4, 12, 4, '2023-09-02', '2023-09-23', '2023-09-30', 1.75);
INSERT INTO loan VALUES (31, 9, 9, 3, '2023-09-14', '2023-10-05', '2023-10-03', 0.0);
INSERT INTO loan VALUES (32, 16, 7, 7, '2023-09-25', '2023-10-16', '2023-10-14', 0.0);
INSERT INTO loan VALUES (33, 12, 2, 2, '2023-10-04', '2023-10-25', '2023-11-12', 4.50);
INSERT INTO loan VALUES (34, 29, 14, 6, '2023-10-15', '2023-11-05', '2023-11-01', 0.0);
INSERT INTO loan VALUES (35, 22, 5, 1, '2023-10-28', '2023-11-18', '2023-11-17', 0.0);
INSERT INTO loan VALUES (36, 14, 18, 8, '2023-11-06', '2023-11-27', '2023-11-22', 0.0);
INSERT INTO loan VALUES (37, 19, 13, 1, '2023-11-19', '2023-12-10', '2023-12-08', 0.0);
INSERT INTO loan VALUES (38, 25, 17, 7, '2023-12-02', '2023-12-23', '2023-12-20', 0.0);
INSERT INTO loan VALUES (39, 7, 1, 1, '2024-01-08', '2024-01-29', '2024-01-25', 0.0);
INSERT INTO loan VALUES (40, 28, 10, 8, '2024-01-16', '2024-02-06', NULL, 0.0);
INSERT INTO loan VALUES (41, 5, 8, 5, '2024-01-23', '2024-02-13', NULL, 0.0);
INSERT INTO loan VALUES (42, 13, 3, 3, '2024-02-01', '2024-02-22', NULL, 0.0);
INSERT INTO loan VALUES (43, 18, 12, 4, '2024-02-07', '2024-02-28', NULL, 0.0);
INSERT INTO loan VALUES (44, 20, 9, 3, '2024-02-12', '2024-03-04', '2024-02-29', 0.0);
INSERT INTO loan VALUES (45, 1, 16, 5, '2024-02-18', '2024-03-10', NULL, 0.0);
